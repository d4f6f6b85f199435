"""AWS's service models parsed once per process: every botocore session shares one loader.

botocore gives each session a loader of its own, which parses a service's model files again
(SageMaker's and S3's are megabytes of JSON). The sagemaker SDK makes a session for each step
it builds, and makes one more inside each ``ProcessingStep`` (a ``LocalSagemakerClient``, only
to read a method's name), so building the three pipeline definitions parsed S3's model dozens
of times. The models are read-only data, so sharing the loader changes nothing else.
"""

from __future__ import annotations

import functools

import botocore.session


def share() -> None:
    """Make every botocore session made from now on use one loader per data path (idempotent)."""
    if not hasattr(botocore.session.create_loader, "cache_info"):
        botocore.session.create_loader = functools.cache(botocore.session.create_loader)


def preload(*services: str) -> None:
    """Parse the models of ``services`` now (into the shared loader)."""
    share()
    session = botocore.session.get_session()
    for service in services:
        session.get_service_model(service)
