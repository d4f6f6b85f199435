"""What the definition tests share: proof that building needs no network or credentials, and
the pipeline-variable references a definition holds."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator
from typing import Any

import boto3
import pytest


@contextlib.contextmanager
def offline() -> Iterator[None]:
    """No name lookups, no connections and no credentials anywhere while the block runs."""

    def refuse(*args, **kwargs):
        raise AssertionError(f"building a definition reached for the network: {args[:2]}")

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(socket, "getaddrinfo", refuse)
        mp.setattr(socket.socket, "connect", refuse)
        for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
            mp.delenv(name, raising=False)
        mp.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/credentials")
        mp.setenv("AWS_CONFIG_FILE", "/nonexistent/config")
        # As `mlops pipeline definition` does: importing sagemaker makes a boto3 client, which
        # without credentials would ask the EC2 metadata service for some.
        mp.setenv("AWS_EC2_METADATA_DISABLED", "true")
        # boto3's default session keeps the credential chain it built under the environment
        # of an earlier test.
        mp.setattr(boto3, "DEFAULT_SESSION", None)
        yield


def gets(value: Any) -> Iterator[str]:
    """Every ``{"Get": ...}`` path inside a value."""
    if isinstance(value, dict):
        if set(value) == {"Get"}:
            yield value["Get"]
        for v in value.values():
            yield from gets(v)
    elif isinstance(value, list):
        for v in value:
            yield from gets(v)
