"""What every translation shares: the request helper, shape-driven conversion, names, tags.

A translation turns one resource type's provider inputs (camelCase, Terraform-shaped, every
number a float, as the Pulumi engine hands them over) into the AWS requests the provider
would make. Members are matched to the operation's input shape case-insensitively
(``kmsMasterKeyId`` -> ``KMSMasterKeyID``) and numbers become integers where the shape says
``integer`` or ``long``; a member the shape lacks fails, naming it, so a translation renames
explicitly wherever Terraform's shape differs from the API's. Every request then goes
through :mod:`pipelines.local.strict` before it is sent.

A preview runs the same translations with a *dry* :class:`Request`: each request is fitted and
checked as it would be sent, with the values a preview cannot know yet (outputs of resources
not created) left out of the checks, and none is sent; every answer is :class:`Unknown`.
"""

from __future__ import annotations

import io
import random
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from botocore import xform_name
from botocore.exceptions import ClientError
from botocore.model import Shape
from pulumi.runtime.rpc import UNKNOWN

from localcloud.clients import client
from pipelines.local.strict import RequestRefused, check_request, operation_model

_INTEGERS = ("integer", "long")

# Error codes with which AWS says the resource a request names does not exist; the provider's
# deletes treat them as success (the resource is already gone).
_GONE_CODES = frozenset(
    {
        "NoSuchEntity",
        "ResourceNotFoundException",
        "ResourceNotFound",
        "NotFoundException",
        "NotFound",
        "NoSuchBucket",
        "NoSuchKey",
        "NoSuchBucketPolicy",
        "NoSuchLifecycleConfiguration",
        "NoSuchPublicAccessBlockConfiguration",
        "NoSuchTagSet",
        "OwnershipControlsNotFoundError",
        "ServerSideEncryptionConfigurationNotFoundError",
        "RepositoryNotFoundException",
        "LifecyclePolicyNotFoundException",
        "EntityNotFoundException",
        "ObjectNotFound",
    }
)
_GONE_MESSAGES = ("Could not find", "does not exist", "not found", "pending deletion", "is not found")


def gone(code: str, message: str) -> bool:
    """True when an AWS error says the named resource does not exist (or is being deleted)."""
    if code in _GONE_CODES:
        return True
    # SageMaker answers ValidationException, KMS KMSInvalidStateException for a key pending deletion.
    return code in ("ValidationException", "KMSInvalidStateException", "InvalidParameterValue") and any(
        m.lower() in message.lower() for m in _GONE_MESSAGES
    )


class DeployError(RuntimeError):
    """A resource the deploy could not create, update or delete; the message names it.

    ``code`` is AWS's error code when a request was refused, ``gone`` whether that error says
    the resource does not exist.
    """

    def __init__(self, message: str, *, code: str = "", gone: bool = False):
        super().__init__(message)
        self.code = code
        self.gone = gone


class Unknown(str):
    """An answer a preview cannot know: every member of it is unknown too, and it is falsy."""

    def __new__(cls) -> Unknown:
        return super().__new__(cls, UNKNOWN)

    def __getitem__(self, key: Any) -> Unknown:
        return Unknown()

    def get(self, key: Any, default: Any = None) -> Unknown:
        return Unknown()

    def __iter__(self):
        return iter(())

    def __bool__(self) -> bool:
        return False


def is_unknown(value: Any) -> bool:
    """True when ``value`` is, or holds, a value not known until the deploy (a preview's)."""
    if isinstance(value, str):
        return UNKNOWN in value
    if isinstance(value, Mapping):
        return any(is_unknown(v) for v in value.values())
    if isinstance(value, list | tuple):
        return any(is_unknown(v) for v in value)
    return False


def _known(value: Any, path: str, removed: set[str]) -> Any:
    """``value`` without its unknown parts; the member names left out are added to ``removed``."""
    if isinstance(value, Mapping):
        out = {}
        for key, item in value.items():
            if isinstance(item, str) and UNKNOWN in item:
                removed.add(key)
            else:
                out[key] = _known(item, f"{path}.{key}", removed)
        return out
    if isinstance(value, list | tuple):
        return [_known(v, path, removed) for v in value if not (isinstance(v, str) and UNKNOWN in v)]
    return value


def check_known(service: str, operation: str, params: Mapping[str, Any]) -> list[str]:
    """What AWS would refuse in ``params``, judged on the values known now.

    A required member whose value is not known yet is not reported missing: it will be there.
    """
    removed: set[str] = set()
    known = _known(params, "", removed)
    problems = check_request(service, operation, known)
    return [
        p
        for p in problems
        if not (p.startswith("Missing required parameter") and p.rsplit('"', 2)[-2] in removed)
    ]


class ShapeError(ValueError):
    """Provider inputs that do not fit the operation's input shape."""


def shaped(service: str, operation: str, params: Mapping[str, Any]) -> dict[str, Any]:
    """``params`` fitted to the operation's input shape: member names and integer types."""
    model = operation_model(service, operation)
    return _fit(model.input_shape, params, operation) if model.input_shape else dict(params)


def _fit(shape: Shape, value: Any, path: str) -> Any:
    kind = shape.type_name
    if value is None:
        return None
    if kind == "structure" and isinstance(value, Mapping):
        members = {name.lower(): name for name in shape.members}
        out = {}
        for key, item in value.items():
            member = members.get(key.lower())
            if member is None:
                raise ShapeError(
                    f"{path}: {key!r} is not a member of {shape.name} (members: {', '.join(shape.members)})"
                )
            if item is not None:
                out[member] = _fit(shape.members[member], item, f"{path}.{member}")
        return out
    if kind == "list" and isinstance(value, list | tuple):
        return [_fit(shape.member, item, f"{path}[{i}]") for i, item in enumerate(value)]
    if kind == "map" and isinstance(value, Mapping):
        return {k: _fit(shape.value, v, f"{path}[{k!r}]") for k, v in value.items()}
    if isinstance(value, str) and UNKNOWN in value:
        return value  # not known in a preview: fitted once it is
    if kind in _INTEGERS and isinstance(value, float):
        if not value.is_integer():
            raise ShapeError(f"{path}: {value} is not a whole number ({shape.name} is an integer)")
        return int(value)
    if kind in ("double", "float") and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


def auto_name(logical: str, seed: str, max_length: int | None = None) -> str:
    """The provider's auto-name: the logical name, a dash and 7 random characters.

    Seeded (per stack, resource and replacement generation) so a re-run names alike.
    """
    suffix = "".join(random.Random(seed).choices("0123456789abcdef", k=7))
    base = logical if max_length is None else logical[: max_length - 8]
    return f"{base}-{suffix}"


def archive_bytes(archive: Mapping[str, Any]) -> bytes:
    """A zip of an asset archive as the engine records it (file and string assets), byte-stable."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as out:
        for name, asset in sorted(archive["assets"].items()):
            data = Path(asset["path"]).read_bytes() if asset["kind"] == "file" else asset["text"].encode()
            # A fixed timestamp keeps the bytes (and their hash) the same for the same content.
            out.writestr(zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0)), data)
    return buffer.getvalue()


def tag_list(tags: Mapping[str, str] | None, key: str = "Key", value: str = "Value") -> list[dict[str, str]]:
    return [{key: k, value: v} for k, v in sorted((tags or {}).items())]


@dataclass
class Request:
    """One resource's door to the emulator: every call strict, every failure named.

    ``dry`` (a preview): each request is fitted and checked, none is sent, every answer is
    :class:`Unknown`; ``planned`` holds the names the preview has seen created before, which
    a reference may name. ``created_id`` is set by a translation once its resource exists, so
    a later failure of the same create still records it.
    """

    client_for: Callable[[str], Any]
    logical_name: str
    type: str
    region: str
    account: str
    dry: bool = False
    planned: frozenset[str] | set[str] = frozenset()
    created_id: str | None = None

    def __call__(self, service: str, operation: str, **params: Any) -> dict[str, Any]:
        where = f"{self.logical_name} ({self.type})"
        try:
            fitted = shaped(service, operation, params)
        except ShapeError as exc:
            raise DeployError(f"{where}: {exc}") from None
        if self.dry:
            problems = check_known(service, operation, fitted)
            if problems:
                raise DeployError(f"{where}: {RequestRefused(operation, problems)}")
            return Unknown()
        method = getattr(self.client_for(service), xform_name(operation))
        try:
            return method(**fitted)
        except RequestRefused as exc:
            raise DeployError(f"{where}: {exc}") from None
        except ClientError as exc:
            error = exc.response.get("Error", {})
            code, message = error.get("Code", "?"), str(error.get("Message", exc))
            if exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") == 500:
                raise DeployError(
                    f"{where}: {operation} failed in the emulator (HTTP 500: an API it lacks?)"
                ) from None
            raise DeployError(
                f"{where}: {operation} failed: {code}: {message}", code=code, gone=gone(code, message)
            ) from None

    def created(self, id_: str) -> None:
        """The resource exists from here on: a failure later in its create still records it."""
        self.created_id = id_

    def fail(self, message: str) -> DeployError:
        return DeployError(f"{self.logical_name} ({self.type}): {message}")

    def exists(self, service: str, operation: str, **params: Any) -> bool:
        """True when a read (``GetRole``, ``DescribeKey`` ...) finds the resource.

        In a preview a reference not known yet, or named by a resource the preview creates
        before, counts as found: the deploy checks it again when it is made.
        """
        if self.dry and (is_unknown(params) or self._planned(params)):
            return True
        # AWS makes this check on its own side: read as the emulator, not as the deployer.
        checker = client(self.client_for(service).meta.endpoint_url, self.region, service, as_emulator=True)
        try:
            getattr(checker, xform_name(operation))(**params)
        except ClientError as exc:
            if exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 500) < 500:
                return False
            raise
        return True

    def _planned(self, params: Mapping[str, Any]) -> bool:
        values = [v for v in params.values() if isinstance(v, str)]
        return any(v in self.planned or v.rsplit("/", 1)[-1] in self.planned for v in values)


class Translation:
    """The provider's behaviour for one resource type, in AWS requests.

    ``create`` returns the physical id and the computed outputs (read back from the
    emulator's answers); ``update`` returns the computed outputs after changing ``changed``
    in place; ``delete`` removes the resource. Inputs in ``force_new`` replace the resource
    when they change (the provider's ForceNew); ``name_input`` is the input the provider
    auto-names when the program leaves it out.

    ``read`` is the provider's Read (a refresh): the inputs in ``read_back`` as AWS holds them
    now, or None when the resource is gone. ``create`` and ``update`` return those inputs too,
    read back after the change, so the next diff compares the program with what AWS holds,
    as the bridge diffs against the outputs of the last read.
    """

    type: ClassVar[str]
    force_new: ClassVar[frozenset[str]] = frozenset()
    name_input: ClassVar[str | None] = None
    name_max_length: ClassVar[int | None] = None
    delete_before_replace: ClassVar[bool] = False
    read_back: ClassVar[frozenset[str]] = frozenset()

    def create(self, call: Request, inputs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        raise NotImplementedError

    def update(
        self, call: Request, id_: str, olds: dict[str, Any], news: dict[str, Any], changed: set[str]
    ) -> dict[str, Any]:
        raise call.fail(f"no in-place update for {', '.join(sorted(changed))} in this translation")

    def delete(self, call: Request, id_: str, inputs: dict[str, Any]) -> None:
        raise NotImplementedError

    def read(self, call: Request, id_: str, inputs: dict[str, Any]) -> dict[str, Any] | None:
        """The ``read_back`` inputs as AWS holds them, or None when the resource is gone.

        A type without a read of its own is taken to exist as recorded.
        """
        return {}


class PutTranslation(Translation):
    """A resource whose create and update are the same idempotent put request."""

    def update(self, call, id_, olds, news, changed):
        return self.create(call, news)[1]


REGISTRY: dict[str, Translation] = {}


def register(cls: type[Translation]) -> type[Translation]:
    REGISTRY[cls.type] = cls()
    return cls


def tag_changes(olds: Mapping[str, Any], news: Mapping[str, Any]) -> tuple[dict[str, str], list[str]]:
    """The tags to set (new or with a new value) and the tag keys to remove."""
    old, new = olds.get("tags") or {}, news.get("tags") or {}
    return {k: v for k, v in sorted(new.items()) if old.get(k) != v}, sorted(set(old) - set(new))


def retag(
    olds: Mapping[str, Any],
    news: Mapping[str, Any],
    tag: Callable[[dict[str, str]], Any],
    untag: Callable[[list[str]], Any],
) -> None:
    """Tags changed in place, as the provider does: removed keys untagged, the rest tagged."""
    added, removed = tag_changes(olds, news)
    if removed:
        untag(removed)
    if added:
        tag(added)
