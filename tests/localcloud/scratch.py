"""A scratch Pulumi project for engine tests: one small program, its stack file, its state."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

from localcloud.engine import Engine
from localcloud.state import State

STACK = "tiny"


def project(root: Path, program: str, name: str = "tiny") -> Path:
    """``root`` made a Pulumi project running ``program`` (dedented), stack ``tiny`` in eu-west-1."""
    (root / "infra").mkdir(parents=True, exist_ok=True)
    (root / "infra" / "__main__.py").write_text(textwrap.dedent(program))
    (root / "Pulumi.yaml").write_text(f"name: {name}\nruntime: python\nmain: infra/\n")
    (root / f"Pulumi.{STACK}.yaml").write_text("config:\n  aws:region: eu-west-1\n")
    return root


def engine(root: Path, endpoint_url: str, **config: Any) -> Engine:
    """The engine for the scratch project; ``config`` keys are the project's (``tiny:<key>``).

    The security pack stays off: a scratch program is no platform stack, and these tests are
    about what the engine does, not about what the pack refuses (tests/localcloud/test_policy.py).
    """
    overrides = {f"tiny:{key}": value for key, value in config.items()}
    return Engine(
        STACK, endpoint_url, state_dir=root / ".state", root=root, overrides=overrides, policy_pack=False
    )


def state_file(root: Path) -> Path:
    """Where the scratch stack's state is written."""
    return root / ".state" / f"{STACK}.json"


def state(root: Path) -> State:
    return State.load(state_file(root), STACK)
