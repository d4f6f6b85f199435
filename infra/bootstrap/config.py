"""The bootstrap project's typed config: read once from ``Pulumi.bootstrap.yaml``, validated.

A bad value fails before any resource, naming the key, the value and what is allowed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import pulumi

NAMESPACE = "mlops-bootstrap"
# The main program's stacks; each gets its own deploy role.
ENVIRONMENTS = ("dev", "staging", "prod")
_PROJECT_PATH = re.compile(r"^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)+$")
_URL = re.compile(r"^https://[^/\s?#:]+$")
_NAME = re.compile(r"^[a-z][a-z0-9-]{0,30}$")
# IAM's ARN of an OIDC provider: the issuer's host (gitlabUrl has no path) after "oidc-provider/".
_OIDC_PROVIDER_ARN = re.compile(r"^arn:aws[a-z-]*:iam::\d{12}:oidc-provider/(?P<host>[^/\s]+)$")
# Git ref names cannot contain ':', so a pattern without one cannot reach past the ref field of
# the token's subject into the ref_protected and deployment_tier fields.
_REF = re.compile(r"^[A-Za-z0-9_./*-]+$")


class BootstrapConfigError(ValueError):
    """A config value the bootstrap cannot use; the message names the key."""


@dataclass(frozen=True)
class BootstrapConfig:
    """owner: tagged on every resource. gitlab_url: the GitLab instance (the token issuer).
    project_path: the one project whose pipelines may deploy (group/project).
    default_branch / release_tag_pattern: the protected refs deploys run from.
    resource_prefix: the schema name the main program prefixes its AWS names with.
    existing_oidc_provider_arn: the account's GitLab OIDC provider when it already has one
        (IAM allows one provider per issuer URL); None creates it."""

    owner: str
    gitlab_url: str
    project_path: str
    default_branch: str
    release_tag_pattern: str
    resource_prefix: str
    existing_oidc_provider_arn: str | None = None

    @property
    def gitlab_host(self) -> str:
        return self.gitlab_url.removeprefix("https://")


def _key(name: str) -> str:
    return f"{NAMESPACE}:{name}"


def validate(values: dict[str, str | None]) -> BootstrapConfig:
    """``values`` by config key (without the namespace) -> the typed config, or an error."""
    checks = {
        "owner": (re.compile(r"^\S.*$"), "a team or person"),
        "gitlabUrl": (_URL, "https://<host> with no path, e.g. https://gitlab.com"),
        "projectPath": (_PROJECT_PATH, "<group>/<project>, e.g. ml-platform/mlops-platform"),
        "defaultBranch": (_REF, "a branch name without ':'"),
        "releaseTagPattern": (_REF, "a tag pattern without ':', e.g. v*"),
        "resourcePrefix": (_NAME, "the schema name, lowercase letters, digits and '-'"),
    }
    for name, (pattern, expected) in checks.items():
        value = values.get(name)
        if value is None:
            raise BootstrapConfigError(f"{_key(name)}: missing; expected {expected}")
        if not pattern.match(value):
            raise BootstrapConfigError(f"{_key(name)}: {value!r} is not valid; expected {expected}")
    provider_arn = values.get("existingOidcProviderArn")
    if provider_arn is not None:
        match = _OIDC_PROVIDER_ARN.match(provider_arn)
        host = values["gitlabUrl"].removeprefix("https://")
        if not match or match["host"] != host:
            raise BootstrapConfigError(
                f"{_key('existingOidcProviderArn')}: {provider_arn!r} is not valid; expected the ARN "
                f"of the account's provider for {values['gitlabUrl']}, "
                f"arn:aws:iam::<account>:oidc-provider/{host}"
            )
    return BootstrapConfig(
        owner=values["owner"],
        gitlab_url=values["gitlabUrl"],
        project_path=values["projectPath"],
        default_branch=values["defaultBranch"],
        release_tag_pattern=values["releaseTagPattern"],
        resource_prefix=values["resourcePrefix"],
        existing_oidc_provider_arn=provider_arn,
    )


def load() -> BootstrapConfig:
    config = pulumi.Config(NAMESPACE)
    names = (
        "owner",
        "gitlabUrl",
        "projectPath",
        "defaultBranch",
        "releaseTagPattern",
        "resourcePrefix",
        "existingOidcProviderArn",
    )
    return validate({name: config.get(name) for name in names})
