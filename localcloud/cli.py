"""``mlops local deploy``: deploy a stack into the local cloud, preview it, or destroy it.

::

    mlops local deploy --stack <name> [--project DIR] [--preview] [--destroy] [--refresh] [--set key=value ...]

Deploys into the emulator ``AWS_ENDPOINT_URL`` names, or into an embedded one on 127.0.0.1
when none is named (it stops when the command ends, so the state recorded against an earlier
embedded emulator is started afresh). Prints a table of what was done per resource
(operation, type, physical name, changed inputs) and the stack outputs, which are saved with
the state in ``.state/<stack>.json``. A deploy previews first and changes nothing unless every
request passes AWS's checks; ``--preview`` is that preview alone (``pulumi preview --diff``);
``--destroy`` deletes every resource the state records; ``--refresh`` first reads every recorded
resource back (``pulumi up --refresh``): what is gone leaves the state and is created again.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import warnings
from collections import Counter
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from localcloud.engine import ROOT, Engine, project_program
from localcloud.secrets import display
from localcloud.state import Result

_STYLES = {"create": "green", "update": "yellow", "replace": "magenta", "delete": "red", "same": "dim"}


def parse_sets(pairs: list[str], project: str = "mlops-platform") -> dict[str, str]:
    """``key=value`` pairs as stack config; a key without a namespace is the project's."""
    config = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise SystemExit(f"--set: {pair!r} is not key=value")
        config[key] = value
    return namespaced(config, project)


def namespaced(config: dict[str, Any], project: str = "mlops-platform") -> dict[str, Any]:
    """Stack config with each key that names no namespace put in the project's."""
    return {key if ":" in key else f"{project}:{key}": value for key, value in config.items()}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mlops local deploy", description=__doc__.split("\n\n")[0].replace("``", "")
    )
    parser.add_argument(
        "--stack", required=True, help="the stack: Pulumi.<stack>.yaml (dev, staging, prod, local)"
    )
    parser.add_argument(
        "--preview", action="store_true", help="show the plan with the changed inputs; change nothing"
    )
    parser.add_argument("--destroy", action="store_true", help="delete every resource of the stack")
    parser.add_argument(
        "--refresh",
        action="store_true",
        help="read every recorded resource back first: forget what is gone, diff against what is there",
    )
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="override a config key"
    )
    parser.add_argument(
        "--state-dir", type=Path, default=ROOT / ".state", help="where the state file is kept"
    )
    parser.add_argument(
        "--project",
        type=Path,
        default=ROOT,
        help="the Pulumi project (its Pulumi.yaml): the platform (default) or infra/bootstrap",
    )
    parser.add_argument(
        "--no-policy-pack",
        action="store_true",
        help="skip the security policy pack (policies/) that CI's previews and deploys run",
    )
    return parser


def render(result: Result, console: Console, *, show_same: bool = False) -> None:
    if result.refreshed:
        found = Counter(o.op for o in result.refreshed)
        console.print(
            f"Refreshed: {found['delete']} gone, {found['update']} drifted, {found['same']} as recorded"
        )
    verb = "Preview" if result.preview else "Deployed"
    table = Table(title=f"{verb}: stack {result.stack}", title_justify="left")
    for column in ("operation", "type", "resource", "physical name", "changed inputs"):
        table.add_column(column)
    for op in result.operations:
        if op.op == "same" and not show_same:
            continue
        style = _STYLES.get(op.op, "")
        shown = f"{op.op} (delete first)" if op.delete_first else op.op
        table.add_row(
            f"[{style}]{shown}[/]",
            op.type,
            op.name,
            op.physical or "(known after apply)",
            ", ".join(op.changed),
        )
    console.print(table)
    counts = ", ".join(f"{n} {op}" for op in _STYLES if (n := result.count(op)))
    console.print(f"{counts or 'no resources'}; {result.writes} write calls; {result.seconds:.1f} s")
    if result.outputs:
        console.print("Outputs:")
        console.print_json(json.dumps(display(result.outputs)))


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.getLogger("sagemaker").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", message="Running within a PipelineSession")
    # Piped or captured output is not cut to 80 columns: names and types stay whole.
    console = Console() if sys.stdout.isatty() else Console(width=220)
    from localcloud.emulator import embedded_or_named

    project = args.project.resolve()
    engine_args = {
        "state_dir": args.state_dir,
        "overrides": parse_sets(args.set, project_program(project)[0]),
        "root": project,
        "policy_pack": not args.no_policy_pack,
    }
    endpoint_url, embedded = embedded_or_named()
    if embedded is not None:
        console.print(f"embedded emulator on {endpoint_url} (set AWS_ENDPOINT_URL to use a running one)")
    try:
        engine = Engine(args.stack, endpoint_url, fresh_state=embedded is not None, **engine_args)
        if args.destroy:
            result = engine.destroy(preview=args.preview, refresh=args.refresh)
        else:
            result = engine.up(preview=args.preview, refresh=args.refresh)
    except Exception as exc:  # every failure is reported with what it names, and exits non-zero
        Console(stderr=True).print(
            f"[red]mlops local deploy --stack {args.stack} failed:[/] {escape(str(exc))}"
        )
        return 1
    finally:
        if embedded is not None:
            embedded.stop()
    render(result, console)
    return 0


if __name__ == "__main__":
    sys.exit(main())
