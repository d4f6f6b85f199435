"""What every translation shares: the request helper, shape-driven conversion, names, tags.

A translation turns one resource type's provider inputs (camelCase, Terraform-shaped, every
number a float, as the Pulumi engine hands them over) into the AWS requests the provider
would make. Members are matched to the operation's input shape case-insensitively
(``kmsMasterKeyId`` -> ``KMSMasterKeyID``) and numbers become integers where the shape says
``integer`` or ``long``; a member the shape lacks fails, naming it, so a translation renames
explicitly wherever Terraform's shape differs from the API's. Every request then goes
through :mod:`pipelines.local.strict` before it is sent.
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

from pipelines.local.strict import RequestRefused, operation_model

_INTEGERS = ("integer", "long")


class DeployError(RuntimeError):
    """A resource the deploy could not create, update or delete; the message names it."""


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
    """One resource's door to the emulator: every call strict, every failure named."""

    client_for: Callable[[str], Any]
    logical_name: str
    type: str
    region: str
    account: str

    def __call__(self, service: str, operation: str, **params: Any) -> dict[str, Any]:
        where = f"{self.logical_name} ({self.type})"
        try:
            fitted = shaped(service, operation, params)
        except ShapeError as exc:
            raise DeployError(f"{where}: {exc}") from None
        method = getattr(self.client_for(service), xform_name(operation))
        try:
            return method(**fitted)
        except RequestRefused as exc:
            raise DeployError(f"{where}: {exc}") from None
        except ClientError as exc:
            error = exc.response.get("Error", {})
            if exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") == 500:
                raise DeployError(
                    f"{where}: {operation} failed in the emulator (HTTP 500: an API it lacks?)"
                ) from None
            raise DeployError(
                f"{where}: {operation} failed: {error.get('Code', '?')}: {error.get('Message', exc)}"
            ) from None

    def fail(self, message: str) -> DeployError:
        return DeployError(f"{self.logical_name} ({self.type}): {message}")

    def exists(self, service: str, operation: str, **params: Any) -> bool:
        """True when a read (``GetRole``, ``DescribeKey`` ...) finds the resource."""
        try:
            getattr(self.client_for(service), xform_name(operation))(**params)
        except ClientError as exc:
            if exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 500) < 500:
                return False
            raise
        return True


class Translation:
    """The provider's behaviour for one resource type, in AWS requests.

    ``create`` returns the physical id and the computed outputs (read back from the
    emulator's answers); ``update`` returns the computed outputs after changing ``changed``
    in place; ``delete`` removes the resource. Inputs in ``force_new`` replace the resource
    when they change (the provider's ForceNew); ``name_input`` is the input the provider
    auto-names when the program leaves it out.
    """

    type: ClassVar[str]
    force_new: ClassVar[frozenset[str]] = frozenset()
    name_input: ClassVar[str | None] = None
    name_max_length: ClassVar[int | None] = None
    delete_before_replace: ClassVar[bool] = False

    def create(self, call: Request, inputs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        raise NotImplementedError

    def update(
        self, call: Request, id_: str, olds: dict[str, Any], news: dict[str, Any], changed: set[str]
    ) -> dict[str, Any]:
        raise call.fail(f"no in-place update for {', '.join(sorted(changed))} in this translation")

    def delete(self, call: Request, id_: str, inputs: dict[str, Any], outputs: dict[str, Any]) -> None:
        raise NotImplementedError


class PutTranslation(Translation):
    """A resource whose create and update are the same idempotent put request."""

    def update(self, call, id_, olds, news, changed):
        return self.create(call, news)[1]


REGISTRY: dict[str, Translation] = {}


def register(cls: type[Translation]) -> type[Translation]:
    REGISTRY[cls.type] = cls()
    return cls
