"""Resource options the local engine does not honour, refused by name instead of ignored.

The SDK's mock runtime passes every option through to the monitor's ``RegisterResource``
request (``pulumi.runtime.mocks.MockMonitor``), but ``Mocks.new_resource`` sees only the type,
name, inputs and provider: an option the engine does not read would be silently dropped, and
a rehearsal that passes would not be the deploy AWS gets (a ``protect``ed resource deleted, an
``ignore_changes`` input overwritten, an alias's resource replaced). So each one is refused,
naming it, for the resource that sets it. What the engine honours: ``depends_on``, ``parent``,
``retain_on_delete``, ``delete_before_replace``, ``additional_secret_outputs``.
"""

from __future__ import annotations

from typing import Any

# Option (as the program spells it) -> whether a RegisterResourceRequest sets it.
_UNHONOURED = {
    "protect": lambda r: r.protect,
    "ignore_changes": lambda r: bool(r.ignoreChanges),
    "replace_on_changes": lambda r: bool(r.replaceOnChanges),
    "aliases": lambda r: bool(r.aliasURNs) or any(_renames(a) for a in r.aliases),
    "custom_timeouts": lambda r: (
        r.HasField("customTimeouts")
        and any((r.customTimeouts.create, r.customTimeouts.update, r.customTimeouts.delete))
    ),
    "provider": lambda r: bool(r.provider) or bool(r.providers),
    "deleted_with": lambda r: bool(r.deletedWith),
    "import_": lambda r: bool(r.importId),
    "replace_with": lambda r: bool(r.replace_with),
    "replacement_trigger": lambda r: r.HasField("replacement_trigger"),
    "hide_diffs": lambda r: bool(r.hideDiffs),
}


def _renames(alias: Any) -> bool:
    """An alias that moves the resource by name, project, stack or parent (not by type alone)."""
    if alias.WhichOneof("alias") != "spec":
        return True
    spec = alias.spec
    return bool(spec.name or spec.project or spec.stack or spec.parentUrn or spec.noParent)


def type_aliases(request: Any) -> set[str]:
    """The former types a resource declares. The provider SDKs add one for each renamed type
    (``aws.s3.Bucket`` was ``aws:s3/bucketV2:BucketV2``): harmless while no state holds a
    resource under the old type, which :func:`aliased_in_state` checks."""
    return {a.spec.type for a in request.aliases if a.WhichOneof("alias") == "spec" and a.spec.type}


def aliased_in_state(name: str, types: set[str], recorded: Any) -> list[str]:
    """URNs of recorded resources a type alias would carry over (the engine would not)."""
    return [r.urn for r in recorded if r.type in types and r.name == name]


def refused(request: Any) -> list[str]:
    """The options ``request`` (a RegisterResourceRequest) sets that the engine does not honour."""
    if request.type.startswith("pulumi:providers:"):
        return ["provider (an explicit provider resource)"]
    return [name for name, is_set in _UNHONOURED.items() if is_set(request)]


def message(name: str, type_: str, options: list[str]) -> str:
    return (
        f"{name} ({type_}): resource option {', '.join(options)} is not honoured by the local cloud's "
        "engine; the rehearsal refuses it rather than deploy differently from `pulumi up` "
        "(honoured: depends_on, parent, retain_on_delete, delete_before_replace, additional_secret_outputs)"
    )
