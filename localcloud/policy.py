"""The policy pack (policies/) run in-process, as the Pulumi CLI runs it with `--policy-pack`.

The CLI hands the pack each resource's inputs (``Analyze``) and, at the end of the preview,
every resource (``AnalyzeStack``); a mandatory violation stops the update before any change.
Here the same ``ResourceValidationPolicy`` and ``StackValidationPolicy`` objects are called
directly with the SDK's own argument types, the properties wrapped in its unknown-checking
proxy as its analyzer servicer does, so the pack behaves as it does under the CLI.

``enforce`` runs a program once under recording mocks (no AWS write: the only calls are the
program's own data sources, which read) and raises ``PolicyViolationError`` naming each
violation's policy and resource; the engine calls it before the deploy's first write.
"""

from __future__ import annotations

import inspect
import os
import runpy
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
from pulumi.runtime.mocks import MockMonitor
from pulumi_policy import (
    EnforcementLevel,
    PolicyCustomTimeouts,
    PolicyResource,
    PolicyResourceOptions,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)
from pulumi_policy.proxy import UnknownValueError, unknown_checking_proxy

from localcloud.translations.base import DeployError
from policies.invariants import PACK_NAME, POLICIES

_current = threading.local()


@dataclass
class Declared:
    """One resource as the program declares it: what the analyzer is handed."""

    type: str
    name: str
    urn: str
    inputs: dict[str, Any]
    outputs: dict[str, Any] = field(default_factory=dict)
    parent: str | None = None
    property_dependencies: dict[str, list[str]] = field(default_factory=dict)


@dataclass(frozen=True)
class Violation:
    policy: str
    resource_type: str
    resource_name: str
    message: str

    def __str__(self) -> str:
        return f"[{self.policy}] {self.message}"


class PolicyViolationError(DeployError):
    """The pack refused the program: nothing was created, updated or deleted."""

    def __init__(self, stack: str, violations: list[Violation]):
        self.violations = violations
        lines = "\n".join(f"  {v}" for v in violations)
        super().__init__(
            f"policy pack {PACK_NAME}: {len(violations)} mandatory violation(s) in stack {stack}; "
            f"nothing was changed\n{lines}"
        )


def _options(parent: str | None) -> PolicyResourceOptions:
    return PolicyResourceOptions(False, [], None, [], PolicyCustomTimeouts(0, 0, 0), [], parent)


def _run(validate: Callable[..., Any], args: Any, report: Callable[..., None]) -> None:
    result = validate(args, report)
    if inspect.isawaitable(result):
        import asyncio

        asyncio.run(result)  # as the SDK's servicer does for an async validation


def evaluate(
    resources: Iterable[Declared], stack: str, policies=POLICIES, project: str = "mlops-platform"
) -> list[Violation]:
    """Every mandatory violation of ``policies`` over ``resources`` (resource policies on each
    resource's inputs, stack policies on all of them), in declaration order."""
    # The analyzer configures the runtime with the stack it analyses (PULUMI_STACK), so a policy
    # may ask pulumi.get_stack(); so does this.
    pulumi.runtime.configure(pulumi.runtime.Settings(project=project, stack=stack, dry_run=True))
    resources = [r for r in resources if not r.type.startswith("pulumi:")]
    found: list[Violation] = []
    by_urn = {r.urn: r for r in resources}
    for policy in policies:
        if policy.enforcement_level != EnforcementLevel.MANDATORY:
            continue

        def report(message: str, urn: str | None = None, policy=policy, resource=None) -> None:
            target = resource or by_urn.get(urn or "")
            found.append(
                Violation(
                    policy.name,
                    target.type if target else "",
                    target.name if target else "",
                    message or policy.description,
                )
            )

        if isinstance(policy, ResourceValidationPolicy):
            for r in resources:
                args = ResourceValidationArgs(
                    r.type, unknown_checking_proxy(r.inputs), r.urn, r.name, _options(r.parent), None
                )
                try:
                    _run(policy.validate, args, lambda m, u=None, r=r, rep=report: rep(m, u, resource=r))
                except UnknownValueError:
                    continue  # unknown until deployed: the CLI, too, only warns
        elif isinstance(policy, StackValidationPolicy):
            stack_resources = {
                r.urn: PolicyResource(
                    r.type,
                    # The analyzer sees each resource's state; before a deploy that is what the
                    # program declares (its inputs) beside what AWS assigns (ids, ARNs).
                    unknown_checking_proxy({**r.outputs, **r.inputs}),
                    r.urn,
                    r.name,
                    _options(r.parent),
                    None,
                    None,
                    [],
                    {},
                )
                for r in resources
            }
            for r in resources:
                stack_resources[r.urn].property_dependencies = {
                    prop: [stack_resources[u] for u in urns if u in stack_resources]
                    for prop, urns in r.property_dependencies.items()
                }
            try:
                _run(policy.validate, StackValidationArgs(list(stack_resources.values())), report)
            except UnknownValueError:
                continue
    return found


# -- recording a program without deploying it --------------------------------------------------


class _Monitor(MockMonitor):
    def RegisterResource(self, request):
        _current.urn = self.make_urn(request.parent, request.type, request.name)
        _current.parent = request.parent or None
        _current.property_dependencies = {
            prop: sorted(deps.urns) for prop, deps in request.propertyDependencies.items()
        }
        return super().RegisterResource(request)


class _Recorder(pulumi.runtime.Mocks):
    """Answers every registration with its inputs (plus an id), keeping what was declared."""

    def __init__(self, invoke: Callable[[str], dict[str, Any]], region: str):
        self.invoke = invoke
        self.region = region
        self.account = invoke("aws:index/getCallerIdentity:getCallerIdentity")["accountId"]
        self.resources: list[Declared] = []
        self._lock = threading.Lock()

    def new_resource(self, args: pulumi.runtime.MockResourceArgs):
        resource_id = f"{args.name}-id"
        outputs = {**args.inputs, "id": resource_id}
        # What AWS computes, in its shape, so what the program derives from it (a key's ARN in
        # a bucket's encryption) is checked as it will be sent.
        service = args.typ.split(":")[1].split("/")[0] if args.typ.count(":") == 2 else "unknown"
        physical = outputs.get("name") or args.name
        kind = args.typ.rsplit(":", 1)[-1].lower()
        outputs.setdefault("arn", f"arn:aws:{service}:{self.region}:{self.account}:{kind}/{physical}")
        outputs.setdefault("name", physical)
        if args.typ == "aws:kms/key:Key":
            outputs.setdefault("keyId", resource_id)
        if args.typ == "aws:s3/bucket:Bucket":
            outputs.setdefault("bucket", args.inputs.get("bucket") or args.name)
        if args.custom:
            with self._lock:
                self.resources.append(
                    Declared(
                        args.typ,
                        args.name,
                        _current.urn,
                        dict(args.inputs),
                        outputs,
                        _current.parent,
                        dict(_current.property_dependencies),
                    )
                )
        return [resource_id, outputs]

    def call(self, args: pulumi.runtime.MockCallArgs):
        return self.invoke(args.token)


def record_program(
    program: Path,
    *,
    root: Path,
    project: str,
    stack: str,
    config: dict[str, str],
    secret_keys: list[str],
    invoke: Callable[[str], dict[str, Any]],
) -> list[Declared]:
    """Run ``program`` as the engine does (working directory ``root``, config set the way
    ``pulumi-language-python-exec`` sets it) and return what it declares, creating nothing."""
    recorder = _Recorder(invoke, config.get("aws:region", "us-east-1"))
    pulumi.runtime.set_mocks(
        recorder, project=project, stack=stack, preview=False, monitor=_Monitor(recorder)
    )
    pulumi.runtime.set_all_config(config, secret_keys)

    @pulumi.runtime.test
    def declare():
        runpy.run_path(str(program), run_name="__main__")

    cwd = os.getcwd()
    os.chdir(root)
    try:
        declare()
    finally:
        os.chdir(cwd)
    return recorder.resources


def enforce(
    program: Path,
    *,
    root: Path,
    project: str,
    stack: str,
    config: dict[str, str],
    secret_keys: list[str],
    invoke: Callable[[str], dict[str, Any]],
) -> list[Declared]:
    """Raise ``PolicyViolationError`` if the program breaks a mandatory policy of the pack."""
    declared = record_program(
        program,
        root=root,
        project=project,
        stack=stack,
        config=config,
        secret_keys=secret_keys,
        invoke=invoke,
    )
    violations = evaluate(declared, stack, project=project)
    if violations:
        raise PolicyViolationError(stack, violations)
    return declared
