"""Bucket policies evaluated with the request context the emulator supplies.

moto applies a bucket policy to object reads and writes but evaluates only ``StringEquals``
conditions and treats every other operator as satisfied, so a TLS-only policy (deny when
``aws:SecureTransport`` is false, deny when ``s3:TlsVersion`` is below 1.2) refuses every
request. AWS evaluates the conditions against the request; the emulator stands for the TLS
endpoint a client reaches on AWS, so it supplies ``aws:SecureTransport = true`` and
``s3:TlsVersion = 1.3`` for the requests it serves, and moto's check now evaluates the policy
with IAM's policy language as ``localcloud.emulator.iam_policy`` does (for the anonymous
principal moto checks; every other principal's request is judged by
``localcloud.emulator.authorisation``).
"""

from __future__ import annotations

import json

from moto.iam.access_control import PermissionResult
from moto.s3 import models as s3_models

from localcloud.emulator.iam_policy import ALLOW, DENY, Principal, evaluate

# What every request to the emulator carries, as a client on AWS's TLS endpoint would.
REQUEST_CONTEXT = {"aws:securetransport": ["true"], "s3:tlsversion": ["1.3"]}
_ANONYMOUS = Principal(arn="*", account="")


def _get_permission(self: s3_models.FakeBucket, action: str, resource: str) -> PermissionResult:
    if self.policy is None:
        return PermissionResult.NEUTRAL
    verdict = evaluate(json.loads(self.policy), action, resource, REQUEST_CONTEXT, _ANONYMOUS)
    return {DENY: PermissionResult.DENIED, ALLOW: PermissionResult.PERMITTED}.get(
        verdict.effect, PermissionResult.NEUTRAL
    )


def install() -> None:
    s3_models.FakeBucket.get_permission = _get_permission
