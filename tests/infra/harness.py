"""Run the Pulumi program, or one component, under the SDK's mock runtime (no CLI, no AWS).

``run_stack("prod")`` runs ``infra/__main__.py`` the way the Pulumi engine does: working
directory the repository root, config from ``Pulumi.prod.yaml``. Every resource the program
declares is recorded with its type, name, inputs and parent, so tests assert on what
`pulumi up` would send to AWS.
"""

from __future__ import annotations

import functools
import json
import os
import runpy
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
import yaml

ROOT = Path(__file__).resolve().parents[2]
PROJECT = "mlops-platform"
ACCOUNT = "123456789012"


@dataclass
class Recorded:
    type: str
    name: str
    inputs: dict[str, Any]
    outputs: dict[str, Any]


@dataclass
class Recorder(pulumi.runtime.Mocks):
    """Mocks that answer like AWS would for the fields the program reads back (ids, ARNs, names)."""

    region: str = "eu-west-1"
    resources: list[Recorded] = field(default_factory=list)

    def new_resource(self, args: pulumi.runtime.MockResourceArgs):
        outputs = dict(args.inputs)
        service = args.typ.split(":")[1].split("/")[0] if ":" in args.typ else "unknown"
        kind = args.typ.rsplit(":", 1)[-1]
        physical = outputs.get("name") or args.name
        outputs.setdefault("arn", f"arn:aws:{service}:{self.region}:{ACCOUNT}:{kind.lower()}/{physical}")
        outputs.setdefault("name", physical)
        outputs.setdefault("bucket", physical) if args.typ == "aws:s3/bucket:Bucket" else None
        if args.typ.startswith("aws:kms/key:Key"):
            outputs.setdefault("keyId", f"{args.name}-key-id")
        self.resources.append(Recorded(args.typ, args.name, dict(args.inputs), outputs))
        return [f"{args.name}-id", outputs]

    def call(self, args: pulumi.runtime.MockCallArgs):
        if args.token == "aws:index/getCallerIdentity:getCallerIdentity":
            return {
                "accountId": ACCOUNT,
                "arn": f"arn:aws:iam::{ACCOUNT}:user/test",
                "userId": "test",
                "id": ACCOUNT,
            }
        if args.token == "aws:index/getRegion:getRegion":
            return {"name": self.region, "region": self.region, "id": self.region}
        if args.token == "aws:index/getPartition:getPartition":
            return {"partition": "aws", "dnsSuffix": "amazonaws.com", "id": "aws"}
        if args.token.endswith("getPolicyDocument"):
            return {"json": json.dumps(args.args), "id": "policy"}
        return {}

    # -- queries used by tests ---------------------------------------------------------
    def of_type(self, typ: str) -> list[Recorded]:
        return [r for r in self.resources if r.type == typ]

    def one(self, typ: str) -> Recorded:
        found = self.of_type(typ)
        assert len(found) == 1, f"expected one {typ}, found {[r.name for r in found]}"
        return found[0]


def stack_config(stack: str) -> dict[str, Any]:
    """The config block of ``Pulumi.<stack>.yaml`` (keys as written, e.g. ``aws:region``)."""
    return yaml.safe_load((ROOT / f"Pulumi.{stack}.yaml").read_text()).get("config", {})


def _as_engine_config(config: dict[str, Any]) -> dict[str, str]:
    # The engine hands the program strings; structured values arrive as JSON.
    return {k: v if isinstance(v, str) else json.dumps(v) for k, v in config.items()}


def run(
    program: Callable[[], Any],
    *,
    stack: str = "test",
    config: dict[str, Any] | None = None,
    region: str = "eu-west-1",
) -> Recorder:
    """Run ``program`` (a callable declaring resources) under mocks; return what it declared."""
    mocks = Recorder(region=region)
    pulumi.runtime.set_mocks(mocks, project=PROJECT, stack=stack, preview=False)
    pulumi.runtime.set_all_config(_as_engine_config({"aws:region": region, **(config or {})}))

    @pulumi.runtime.test
    def declare():
        return program()

    declare()
    return mocks


def run_stack(stack: str, overrides: dict[str, Any] | None = None) -> Recorder:
    """Run infra/__main__.py for a committed stack, as `pulumi up --stack <stack>` would."""
    config = {**stack_config(stack), **(overrides or {})}
    region = config.get("aws:region", "eu-west-1")
    cwd = os.getcwd()
    os.chdir(ROOT)
    try:
        return run(
            lambda: runpy.run_path(str(ROOT / "infra" / "__main__.py"), run_name="__main__"),
            stack=stack,
            config=config,
            region=region,
        )
    finally:
        os.chdir(cwd)


MODEL_PACKAGE = "arn:aws:sagemaker:eu-west-1:123456789012:model-package/customer-churn-{stack}/3"
CHALLENGER_PACKAGE = "arn:aws:sagemaker:eu-west-1:123456789012:model-package/customer-churn-{stack}/4"


@functools.cache
def committed_stack(stack: str, with_model: bool = False) -> Recorder:
    """A committed stack run once per test process: as committed (a fresh platform without a
    model), or with a model package approved, so the endpoint is declared too."""
    overrides = None
    if with_model:
        overrides = {
            "mlops-platform:modelPackageArn": MODEL_PACKAGE.format(stack=stack),
            "mlops-platform:shadowModelPackageArn": CHALLENGER_PACKAGE.format(stack=stack),
        }
    return run_stack(stack, overrides)


BOOTSTRAP = ROOT / "infra" / "bootstrap"


@functools.cache
def bootstrap_stack(overrides: tuple[tuple[str, Any], ...] = ()) -> Recorder:
    """The bootstrap project (infra/bootstrap) run once per test process, as `pulumi up` would."""
    config = {
        **yaml.safe_load((BOOTSTRAP / "Pulumi.bootstrap.yaml").read_text())["config"],
        **dict(overrides),
    }
    return run(
        lambda: runpy.run_path(str(BOOTSTRAP / "__main__.py"), run_name="__main__"),
        stack="bootstrap",
        config=config,
        region=config.get("aws:region", "eu-west-1"),
    )
