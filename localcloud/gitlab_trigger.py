"""What GitLab does with an approval the local cloud recorded: the model-promotion pipeline it starts.

The approval rule's API destination is recorded, never sent (:mod:`localcloud.behaviours.targets`).
This module is GitLab's side of that request, so a rehearsal can follow an approval all the way:

* :func:`pipeline_variables`: the trigger request as GitLab reads it (``POST
  /projects/:id/trigger/pipeline`` with ``token`` and ``ref``, variables in the JSON body), or
  :class:`TriggerRefused` with the 400 GitLab answers when the project lets no one set
  pipeline variables (``pipeline_variables_minimum_override_role: no_one_allowed``, the default
  of new projects);
* :func:`deploy_jobs`: the deploy jobs that pipeline runs: the stacks in ``DEPLOY_STACKS``;
* :func:`rehearse`: each job as ``.ci/deploy`` runs it: ``mlops promote --from
  $MODEL_PACKAGE_ARN --stack <stack>``, then the deploy with the package it printed (here the
  local cloud's engine stands in for ``pulumi up``). A CI rehearsal (gitlab-ci-local) can call
  the same functions once it drives the jobs itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from localcloud.emulator.session import EmulatorSession
from localcloud.engine import Engine, Result
from localcloud.state import State
from mlops.promote import as_role, promote

VARIABLES = (
    "MODEL_PACKAGE_ARN",
    "MODEL_PACKAGE_GROUP",
    "MODEL_PACKAGE_VERSION",
    "MODEL_SOURCE_STACK",
    "DEPLOY_STACKS",
)


class TriggerRefused(RuntimeError):
    """GitLab answers the trigger request with a 4xx; ``status`` is its code."""

    def __init__(self, status: int, message: str):
        super().__init__(f"{status}: {message}")
        self.status = status


@dataclass(frozen=True)
class Deployed:
    stack: str
    model_package_arn: str
    result: Result


def pipeline_variables(call: dict[str, Any], *, variables_allowed: bool = True) -> dict[str, str]:
    """The variables of the pipeline a recorded trigger call starts.

    ``variables_allowed``: the project's "Minimum role to use pipeline variables" lets the trigger
    token's owner set them (anything but "No one allowed").
    """
    if call.get("method") != "POST" or not str(call.get("endpoint", "")).endswith("/trigger/pipeline"):
        raise TriggerRefused(404, f"{call.get('method')} {call.get('endpoint')} is not a pipeline trigger")
    body = call.get("body")
    variables = body.get("variables") if isinstance(body, dict) else None
    if not isinstance(variables, dict) or not all(isinstance(v, str) for v in variables.values()):
        raise TriggerRefused(400, "variables: expected an object of string values")
    if variables and not variables_allowed:
        raise TriggerRefused(400, "Insufficient permissions to set pipeline variables")
    missing = [name for name in ("MODEL_PACKAGE_ARN", "DEPLOY_STACKS") if not variables.get(name)]
    if missing:
        raise TriggerRefused(400, f"variables: {', '.join(missing)} missing")
    return dict(variables)


def deploy_jobs(variables: dict[str, str]) -> list[str]:
    """The stacks the promotion pipeline deploys, in order (``DEPLOY_STACKS``)."""
    return variables["DEPLOY_STACKS"].split()


def rehearse(
    variables: dict[str, str],
    *,
    endpoint_url: str,
    state_dir: Path,
    session: Any,
    stacks: list[str] | None = None,
    config: dict[str, dict[str, Any]] | None = None,
) -> list[Deployed]:
    """Run the pipeline's deploy jobs (or ``stacks`` of them) as ``.ci/deploy`` does.

    ``config``: stack -> config values the stack's deploys set besides the model (as a stack's
    own ``Pulumi.<stack>.yaml`` or ``pulumi config set`` would).
    """
    done = []
    for stack in stacks if stacks is not None else deploy_jobs(variables):
        if stack not in deploy_jobs(variables):
            continue  # .ci/deploy: a stack before the approval's is not deployed
        package = promote(
            variables["MODEL_PACKAGE_ARN"], stack, session=_promoting(session, state_dir, stack, endpoint_url)
        ).model_package_arn
        result = Engine(
            stack,
            endpoint_url,
            state_dir=state_dir,
            overrides={**(config or {}).get(stack, {}), "mlops-platform:modelPackageArn": package},
        ).up()
        done.append(Deployed(stack, package, result))
    return done


def _promoting(session: Any, state_dir: Path, stack: str, endpoint_url: str) -> Any:
    """Whom ``mlops promote`` runs as: ``.ci/deploy`` passes the stack's ``promotionRoleArn``
    output as ``--role-arn`` (a stack that promotes from nowhere has none: the job's own)."""
    role = State.load(state_dir / f"{stack}.json", stack).outputs.get("promotionRoleArn")
    if not role:
        return session
    return EmulatorSession(endpoint_url, session.region_name, as_role(session, role, stack))
