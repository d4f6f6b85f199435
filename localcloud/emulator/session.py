"""Sessions whose clients reach the emulator (no import of the behaviours, which use them)."""

from __future__ import annotations

import boto3

CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}


class EmulatorSession(boto3.Session):
    """A boto3 session whose clients reach the emulator: as its administrator, or with ``credentials``."""

    def __init__(self, endpoint_url: str, region: str, credentials: dict[str, str] | None = None) -> None:
        super().__init__(region_name=region, **(credentials or CREDENTIALS))
        self._endpoint_url = endpoint_url

    def client(self, service: str, **kwargs):
        kwargs.setdefault("endpoint_url", self._endpoint_url)
        return super().client(service, **kwargs)


# Who deploys: the emulator's administrator (the dummy key), unless a command was given the
# credentials of a CI job's role (localcloud/pulumi_cli.py, from GitLab's ID token).
_deployer: dict[str, str] = dict(CREDENTIALS)


def deploy_as(credentials: dict[str, str]) -> None:
    """Make every session of this process (the engine's clients, the state backend) use these."""
    _deployer.clear()
    _deployer.update(credentials)


def deployer() -> dict[str, str]:
    """The deploying identity's credentials (a copy)."""
    return dict(_deployer)


def deploying_as_administrator() -> bool:
    """True unless a CI job's credentials were given (then the bootstrap made what it needs)."""
    return _deployer == CREDENTIALS


def session_for(region: str) -> boto3.Session:
    """A boto3 session as the deploying identity (the emulator's administrator by default)."""
    return boto3.Session(region_name=region, **_deployer)
