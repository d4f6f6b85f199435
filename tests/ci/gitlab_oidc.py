"""GitLab's ID tokens for the rehearsal's jobs: signed JWTs with the claims GitLab puts in them.

GitLab issues a job one token per ``id_tokens`` entry (gitlabhq ``Gitlab::Ci::JwtV2``, built on
``Gitlab::Ci::Jwt``): the reserved claims ``iss`` (the instance's base URL, the issuer the IAM
OIDC provider names), ``aud`` (the entry's ``aud``), ``sub``, ``iat``, ``nbf`` (5 s before),
``exp`` (the job's timeout later) and ``jti``; and the job's claims, among them ``project_path``,
``ref``, ``ref_type``, ``ref_protected`` and, for a job with an environment, ``environment``,
``environment_protected``, ``deployment_tier`` and ``environment_action``. ``sub`` and the
claims it is made of come from tests/infra/bootstrap/gitlab_tokens.py, built from GitLab's
documented components and the ones the README tells the project to set, never from the
project's own helpers. Tokens are RS256-signed with a key this module makes; ``jwks`` is its
public half, as GitLab publishes at ``/oauth/discovery/keys``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
import uuid
from dataclasses import dataclass, field

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from tests.infra.bootstrap import gitlab_tokens

# gitlabhq Gitlab::Ci::Jwt::NOT_BEFORE_TIME
NOT_BEFORE_SECONDS = 5


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _int(value: int) -> str:
    return _b64(value.to_bytes((value.bit_length() + 7) // 8, "big"))


@dataclass(frozen=True)
class Job:
    """What GitLab reads from a job to issue its token."""

    name: str
    ref: str
    ref_type: str = "branch"
    protected: bool = True
    environment: str | None = None
    tier: str | None = None
    action: str = "start"
    aud: str = "sts.amazonaws.com"
    pipeline_source: str = "push"
    timeout_seconds: int = 3600


@dataclass
class Issuer:
    """A GitLab instance's token signer: ``base_url`` is ``iss``; ``project`` the job's project."""

    base_url: str = "https://gitlab.com"
    project: str = gitlab_tokens.PROJECT
    components: tuple[str, ...] = field(default_factory=gitlab_tokens.readme_sub_claim_components)
    key: rsa.RSAPrivateKey = field(default_factory=lambda: rsa.generate_private_key(65537, 2048))

    @property
    def kid(self) -> str:
        # RFC 7638 thumbprint of the public key, as GitLab names its signing keys.
        numbers = self.key.public_key().public_numbers()
        canonical = json.dumps(
            {"e": _int(numbers.e), "kty": "RSA", "n": _int(numbers.n)}, separators=(",", ":")
        )
        return _b64(hashlib.sha256(canonical.encode()).digest())

    def jwks(self) -> dict:
        numbers = self.key.public_key().public_numbers()
        key = {"kty": "RSA", "kid": self.kid, "use": "sig", "alg": "RS256"}
        return {"keys": [key | {"e": _int(numbers.e), "n": _int(numbers.n)}]}

    def claims(self, job: Job, *, now: int | None = None) -> dict[str, str | int]:
        """The token's payload for ``job``."""
        shaped = gitlab_tokens.claims(
            ref=job.ref,
            ref_type=job.ref_type,
            protected=job.protected,
            tier=job.tier if job.environment else None,
            project=self.project,
            aud=job.aud,
        )
        now = int(time.time()) if now is None else now
        namespace = self.project.rsplit("/", 1)[0]
        payload: dict[str, str | int] = {
            "namespace_id": "4241",
            "namespace_path": namespace,
            "project_id": shaped["project_id"],
            "project_path": self.project,
            "user_id": "7",
            "user_login": "release-manager",
            "user_email": "release-manager@example.com",
            "user_access_level": "maintainer",
            "pipeline_id": "1001",
            "pipeline_source": job.pipeline_source,
            "job_id": str(2000 + sum(job.name.encode())),
            "ref": job.ref,
            "ref_type": job.ref_type,
            "ref_path": f"refs/{'heads' if job.ref_type == 'branch' else 'tags'}/{job.ref}",
            "ref_protected": shaped["ref_protected"],
            "runner_environment": "self-hosted",
            "jti": str(uuid.uuid4()),
            "iss": self.base_url,
            "iat": now,
            "nbf": now - NOT_BEFORE_SECONDS,
            "exp": now + job.timeout_seconds,
            "aud": job.aud,
            "sub": gitlab_tokens.subject(shaped, self.components),
        }
        if job.environment:
            payload |= {
                "environment": job.environment,
                "environment_protected": shaped["environment_protected"],
                "deployment_tier": shaped["deployment_tier"],
                "environment_action": job.action,
            }
        return payload

    def token(self, job: Job) -> str:
        """The signed JWT GitLab puts in the job's ``id_tokens`` variable."""
        header = {"alg": "RS256", "kid": self.kid, "typ": "JWT"}
        signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(self.claims(job)).encode())}"
        signature = self.key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
        return f"{signing_input}.{_b64(signature)}"


def payload(token: str) -> dict:
    """The claims of a token (what STS reads after checking the signature)."""
    body = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
