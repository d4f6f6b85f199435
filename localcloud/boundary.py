"""A stack's permissions boundary in the local cloud, where no bootstrap has made it.

Every role the platform creates carries ``mlops-platform-<stack>-boundary`` (infra/base.py),
a managed policy the bootstrap program creates per stack on AWS (infra/bootstrap), and IAM
refuses a role whose boundary does not exist. The bootstrap covers dev, staging and prod; the
``local`` stack (and a stack deployed into an emulator without the bootstrap) gets the same
document here, from the bootstrap's own ``boundary_policy``, before its first deploy. With
request authorisation on (localcloud/emulator/authorisation.py), the boundary limits what the
stack's roles may do there exactly as on AWS.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from infra.base import BOUNDARY_POLICY_NAME, permissions_boundary_arn
from infra.bootstrap import config as bootstrap_config
from infra.bootstrap.policies import boundary_policy
from model_code.contract import schema as contract_schema

BOOTSTRAP_STACK_FILE = Path(__file__).resolve().parents[1] / "infra" / "bootstrap" / "Pulumi.bootstrap.yaml"


def _bootstrap_config(resource_prefix: str) -> bootstrap_config.BootstrapConfig:
    """The committed bootstrap stack's config, with the deployed stack's resource prefix."""
    values = yaml.safe_load(BOOTSTRAP_STACK_FILE.read_text())["config"]
    namespace = f"{bootstrap_config.NAMESPACE}:"
    own = {k.removeprefix(namespace): v for k, v in values.items() if k.startswith(namespace)}
    return bootstrap_config.validate({**own, "resourcePrefix": resource_prefix})


def ensure(iam: Any, stack: str, schema_path: Path, account: str, region: str) -> bool:
    """Create the stack's boundary when it is missing; True when it was created."""
    arn = permissions_boundary_arn("aws", account, stack)
    try:
        iam.get_policy(PolicyArn=arn)
        return False
    except iam.exceptions.NoSuchEntityException:
        pass
    prefix = contract_schema.load(schema_path).name
    document = boundary_policy(stack, _bootstrap_config(prefix), account=account, region=region)
    iam.create_policy(
        PolicyName=BOUNDARY_POLICY_NAME.format(stack=stack),
        PolicyDocument=json.dumps(document),
        Description=f"The permissions boundary of stack {stack}'s roles (made by the local cloud)",
    )
    return True
