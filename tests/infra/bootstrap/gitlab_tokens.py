"""GitLab ID tokens as GitLab issues them, and STS's evaluation of a role's trust against one.

Built from GitLab's own source and documentation, never from the project's helpers, so a trust
policy that demands a claim GitLab cannot issue fails here:

* gitlabhq ``app/models/project_ci_cd_setting.rb``: ``ci_id_token_sub_claim_components``
  accepts only ``ALLOWED_SUB_CLAIM_COMPONENTS``, ``project_path`` or ``project_id`` first;
* gitlabhq ``lib/gitlab/ci/jwt_v2.rb``: ``sub`` is each configured component that has a value
  in the job, as ``<name>:<value>``, joined by ``:`` in the configured order;
* gitlabhq ``lib/gitlab/ci/jwt.rb``: ``ref_protected`` is ``"true"``/``"false"``;
  ``environment``, ``environment_protected`` and ``deployment_tier`` exist only for a job with
  an ``environment``;
* IAM (AWS docs, "Available keys for AWS web identity federation"): a GitLab provider's
  condition keys are ``<host>:aud`` and ``<host>:sub``; ``StringLike`` matches ``*`` and ``?``.
"""

from __future__ import annotations

import fnmatch
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
# GitLab's list (newer versions; older ones allow only the first four without project_id).
ALLOWED_SUB_CLAIM_COMPONENTS = (
    "project_path",
    "project_id",
    "ref_type",
    "ref",
    "ref_protected",
    "environment_protected",
    "deployment_tier",
)
DEFAULT_SUB_CLAIM_COMPONENTS = ("project_path", "ref_type", "ref")
PROJECT = "ml-platform/mlops-platform"


class SubClaimRefused(ValueError):
    """GitLab refuses the project setting (HTTP 400), as ``validate_sub_claim_components`` does."""


def readme_sub_claim_components(readme: Path = ROOT / "README.md") -> tuple[str, ...]:
    """The components the README tells an adopter to set, read from its API call."""
    match = re.search(r"ci_id_token_sub_claim_components\[\]=.*", readme.read_text())
    if not match:
        raise AssertionError("README.md shows no `ci_id_token_sub_claim_components[]=` setting")
    return tuple(re.findall(r"ci_id_token_sub_claim_components\[\]=([a-z_]+)", match.group(0)))


def check_components(components: tuple[str, ...]) -> tuple[str, ...]:
    """What GitLab accepts for ``ci_id_token_sub_claim_components``, or SubClaimRefused."""
    unknown = [c for c in components if c not in ALLOWED_SUB_CLAIM_COMPONENTS]
    if unknown:
        raise SubClaimRefused(f"not allowed: {unknown}; allowed: {ALLOWED_SUB_CLAIM_COMPONENTS}")
    if not components or components[0] not in ("project_path", "project_id"):
        raise SubClaimRefused(f"the first component must be project_path or project_id, not {components[:1]}")
    return components


def claims(
    *,
    ref: str = "main",
    ref_type: str = "branch",
    protected: bool = True,
    tier: str | None = None,
    project: str = PROJECT,
    aud: str = "sts.amazonaws.com",
) -> dict[str, str]:
    """A job's token claims; ``tier`` is its environment's ``deployment_tier`` (None: no environment)."""
    found = {
        "aud": aud,
        "project_path": project,
        "project_id": "4242",
        "ref_type": ref_type,
        "ref": ref,
        "ref_protected": "true" if protected else "false",
    }
    if tier is not None:
        found |= {"environment_protected": "false", "deployment_tier": tier}
    return found


def subject(token: dict[str, str], components: tuple[str, ...]) -> str:
    """``sub`` as GitLab's JwtV2 builds it from ``components``."""
    return ":".join(f"{c}:{token[c]}" for c in check_components(components) if token.get(c))


def may_assume(
    trust: dict, token: dict[str, str], components: tuple[str, ...], host: str = "gitlab.com"
) -> bool:
    """STS's decision on AssumeRoleWithWebIdentity for ``token`` against the trust policy."""
    sub = subject(token, components)
    values = {f"{host}:aud": token["aud"], f"{host}:sub": sub}
    for statement in trust["Statement"]:
        if statement["Effect"] != "Allow" or statement["Action"] != "sts:AssumeRoleWithWebIdentity":
            continue
        if all(_holds(op, cond, values) for op, cond in statement.get("Condition", {}).items()):
            return True
    return False


def _holds(operator: str, condition: dict, values: dict[str, str]) -> bool:
    for key, expected in condition.items():
        if key not in values:  # a key IAM never receives from GitLab never matches
            return False
        patterns = [expected] if isinstance(expected, str) else expected
        actual = values[key]
        if operator == "StringEquals":
            ok = actual in patterns
        elif operator == "StringLike":
            ok = any(fnmatch.fnmatchcase(actual, p.replace("[", "[[]")) for p in patterns)
        else:
            raise AssertionError(f"condition operator {operator} not modelled")
        if not ok:
            return False
    return True
