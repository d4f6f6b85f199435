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


def session_for(region: str) -> boto3.Session:
    """A boto3 session with the emulator's dummy credentials (it never checks them)."""
    return boto3.Session(region_name=region, **CREDENTIALS)
