"""The local cloud's state file and the diff that decides each resource's operation.

Pulumi's mocks have no update or delete hooks, so the engine keeps its own state, as the
Pulumi service does: per resource its URN, type, physical id, inputs and outputs, the URNs
it depends on (per input too) and the order it was registered in. ``.state/<stack>.json``
(git-ignored) also holds the stack outputs, as ``pulumi stack output --json`` prints them,
and the identity of the emulator the resources were made in.

The diff compares the inputs a resource is declared with now against the recorded ones, the
inputs its type reads back (``read_back``) against what AWS held at the last read, as the
bridge diffs against the last read's outputs:

    no difference                       -> same     (the recorded outputs, no AWS call)
    a difference in a ForceNew input    -> replace  (create the new one, delete the old after;
                                                     delete first when delete-before-replace)
    any other difference                -> update   (in place)
    created, but its create failed      -> update   (every input that updates in place again)
    recorded, but no longer declared    -> delete   (after the program, in reverse order)
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pulumi
from pulumi.runtime.rpc import UNKNOWN

from localcloud.translations.base import Translation


@dataclass
class ResourceState:
    urn: str
    type: str
    name: str
    id: str
    inputs: dict[str, Any]
    outputs: dict[str, Any]
    dependencies: list[str] = field(default_factory=list)
    # Registration order in the deploy that last touched it: dependencies come first.
    seq: int = 0
    # The provider's auto-name when the program gave none, kept across updates.
    auto_name: str | None = None
    generation: int = 0
    # The program's retain_on_delete: deleting it (or its replaced half) leaves it in AWS.
    retain_on_delete: bool = False
    # Per input, the URNs its value came from (the register request's property dependencies).
    property_dependencies: dict[str, list[str]] = field(default_factory=dict)
    # Created, but a later request of its create failed (Pulumi's init errors): updated next time.
    init_failed: bool = False


@dataclass
class State:
    stack: str
    resources: dict[str, ResourceState] = field(default_factory=dict)
    outputs: dict[str, Any] = field(default_factory=dict)
    # The emulator the resources live in (its instance id, or its URL when it has none).
    emulator: str | None = None

    @classmethod
    def load(cls, path: Path, stack: str) -> State:
        if not path.exists():
            return cls(stack)
        data = json.loads(path.read_text())
        resources = {r["urn"]: ResourceState(**r) for r in data.get("resources", [])}
        return cls(stack, resources, data.get("outputs", {}), data.get("emulator"))

    def save(self, path: Path, encoded: dict[int, tuple[ResourceState, str]] | None = None) -> None:
        """Write the state whole (a temporary file renamed over the old one).

        ``encoded`` keeps each resource's JSON across saves of the same objects: a deploy
        checkpoints after every step, and re-encoding every resource each time (pipeline
        definitions included) would cost more than the steps.
        """
        path.parent.mkdir(parents=True, exist_ok=True)
        cache = {} if encoded is None else encoded
        parts = []
        for resource in sorted(self.resources.values(), key=lambda r: r.seq):
            # Keyed by the object's identity; the entry holds the object, so no other can take its id.
            hit = cache.get(id(resource))
            if hit is None:
                hit = cache[id(resource)] = (resource, _dumps(asdict(resource)))
            parts.append(hit[1])
        text = (
            f'{{"emulator": {_dumps(self.emulator)},\n"outputs": {_dumps(self.outputs)},\n'
            f'"resources": [\n{",".join(parts)}\n],\n"stack": {_dumps(self.stack)}}}\n'
        )
        tmp = path.with_suffix(".tmp")
        tmp.write_text(text)
        tmp.replace(path)


def _dumps(value: Any) -> str:
    return json.dumps(value, indent=1, sort_keys=True, default=str)


_READS = ("Describe", "Get", "List")


@dataclass
class Operation:
    """What the deploy did (or, in a preview, would do) to one resource."""

    op: str  # create | same | update | replace | delete
    type: str
    name: str
    physical: str
    changed: list[str] = field(default_factory=list)
    # A replacement that deletes the old resource before creating the new one.
    delete_first: bool = False


@dataclass
class Result:
    stack: str
    operations: list[Operation]
    outputs: dict[str, Any]
    calls: Counter
    seconds: float
    preview: bool = False
    # What a refresh found, per recorded resource: same, update (drifted inputs) or delete (gone).
    refreshed: list[Operation] = field(default_factory=list)

    @property
    def writes(self) -> int:
        return sum(n for (_, op), n in self.calls.items() if not op.startswith(_READS))

    def count(self, op: str) -> int:
        return sum(1 for o in self.operations if o.op == op)


def normalize(value: Any) -> Any:
    """Inputs as plain JSON values; assets and archives become what identifies their content."""
    if isinstance(value, dict):
        return {k: normalize(v) for k, v in value.items() if v is not None}
    if isinstance(value, list | tuple):
        return [normalize(v) for v in value]
    if isinstance(value, pulumi.FileAsset):
        path = Path(value.path)
        return {"kind": "file", "path": str(path), "sha256": _digest(path.read_bytes())}
    if isinstance(value, pulumi.StringAsset):
        return {"kind": "string", "text": value.text}
    if isinstance(value, pulumi.AssetArchive):
        return {"kind": "archive", "assets": {k: normalize(v) for k, v in sorted(value.assets.items())}}
    if isinstance(value, pulumi.output.Unknown):
        return UNKNOWN  # a value nested in an input, not known in a preview
    if isinstance(value, pulumi.asset.Asset | pulumi.asset.Archive):
        raise TypeError(f"{type(value).__name__} has no translation in the local cloud")
    return value


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


def changed_inputs(olds: dict[str, Any], news: dict[str, Any]) -> set[str]:
    """Top-level inputs whose values differ, a key added or removed included. A value a preview
    does not know yet differs from every recorded one: the state never records an unknown."""
    return {k for k in set(olds) | set(news) if _canonical(olds.get(k)) != _canonical(news.get(k))}


def decide(
    translation: Translation, old: ResourceState | None, inputs: dict[str, Any]
) -> tuple[str, set[str]]:
    """The operation for a declared resource and the inputs that made it so."""
    if old is None:
        return "create", set(inputs)
    basis = {**old.inputs, **{k: old.outputs[k] for k in translation.read_back if k in old.outputs}}
    changed = changed_inputs(basis, inputs)
    if changed & translation.force_new:
        return "replace", changed
    if old.init_failed:
        # Its create stopped half-way: everything that updates in place is sent again.
        return "update", changed | (set(inputs) - translation.force_new)
    if not changed:
        return "same", set()
    return "update", changed
