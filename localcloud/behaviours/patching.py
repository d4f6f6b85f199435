"""Reversible patches of moto's module globals, so ``uninstall`` leaves moto as it was."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

_MISSING = object()


class Patcher:
    """Sets attributes and remembers the originals; :meth:`restore` undoes them in reverse order."""

    def __init__(self) -> None:
        self._saved: list[tuple[Any, str, Any]] = []
        self._undo: list[Callable[[], None]] = []

    def on_restore(self, undo: Callable[[], None]) -> None:
        """Run ``undo`` on :meth:`restore` (to unsubscribe from the clock, stop threads ...)."""
        self._undo.append(undo)

    def set(self, owner: Any, name: str, value: Any) -> Any:
        """Replace ``owner.name`` with ``value`` and return the original (for wrappers to call)."""
        original = owner.__dict__.get(name, _MISSING) if hasattr(owner, "__dict__") else _MISSING
        self._saved.append((owner, name, original))
        setattr(owner, name, value)
        return getattr(owner, name) if original is _MISSING else original

    def wrap(self, owner: Any, name: str, make: Callable[[Any], Any]) -> None:
        """Replace ``owner.name`` with ``make(original)``: a wrapper that calls the original."""
        self.set(owner, name, make(getattr(owner, name)))

    def restore(self) -> None:
        """Undo everything, even past an undo that fails (the first failure is raised after)."""
        failure: BaseException | None = None
        while self._undo:
            try:
                self._undo.pop()()
            except Exception as exc:  # raised once the patches are undone
                failure = failure or exc
        while self._saved:
            owner, name, original = self._saved.pop()
            if original is _MISSING:
                delattr(owner, name)
            else:
                setattr(owner, name, original)
        if failure is not None:
            raise failure
