"""One translation per resource type the program uses, grouped by AWS service.

``lookup(type_token)`` gives the translation of a type, or fails naming the type token: a
type without a translation is never skipped silently.
"""

from __future__ import annotations

from localcloud.translations import (  # noqa: F401  (each module registers its translations)
    appautoscaling,
    cloudwatch,
    ecr,
    events,
    glue,
    iam,
    kms,
    lambda_,
    s3,
    sagemaker,
    sns,
    sqs,
)
from localcloud.translations.base import REGISTRY, DeployError, Translation


def lookup(type_token: str) -> Translation:
    try:
        return REGISTRY[type_token]
    except KeyError:
        raise DeployError(
            f"{type_token}: no translation for this resource type in the local cloud "
            f"(translated: {len(REGISTRY)} types, see localcloud/translations/)"
        ) from None
