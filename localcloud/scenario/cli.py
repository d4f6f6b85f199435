"""mlops local: run the whole lifecycle on the local cloud and print its summary.

::

    mlops local [--stack local] [--set KEY=VALUE ...] [--schema S.yaml --data D.csv] [--port N]
                [--json PATH] [--dashboard DIR] [--serve]

``--serve`` keeps the emulator running after the scenario until SIGINT or SIGTERM (exit 0),
printing ``AWS_ENDPOINT_URL=http://127.0.0.1:<port>`` on a line of its own once the JSON is
written. The stack's state and outputs are kept in ``--state-dir`` (``.state``), as by
``mlops local deploy``, so ``mlops verify --stack local`` checks the emulator against them. A failing step stops the run naming the step and the cause, with exit code 1.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
import warnings
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from localcloud.cli import parse_sets
from localcloud.engine import ROOT
from localcloud.scenario.data import prepare
from localcloud.scenario.run import Scenario, StepFailed


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mlops local", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--stack", default="local", help="the stack deployed: Pulumi.<stack>.yaml (default local)"
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="stack config over Pulumi.<stack>.yaml, e.g. deploymentStrategy=linear (repeatable)",
    )
    parser.add_argument("--schema", type=Path, help="the data contract (default: the example churn schema)")
    parser.add_argument(
        "--data", type=Path, help="a CSV the schema describes (default: synthetic churn data)"
    )
    parser.add_argument("--rows", type=int, default=2000, help="rows of synthetic data (default 2000)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the data, split and drift")
    parser.add_argument("--port", type=int, default=0, help="the emulator's port (default: a free one)")
    parser.add_argument("--json", type=Path, help="write the summary as JSON here")
    parser.add_argument(
        "--dashboard",
        type=Path,
        metavar="DIR",
        help="draw the stack's CloudWatch dashboard from the emulator's metrics to DIR (PNG, HTML)",
    )
    parser.add_argument("--serve", action="store_true", help="keep the emulator running until interrupted")
    parser.add_argument(
        "--state-dir",
        type=Path,
        default=ROOT / ".state",
        help="where the stack's state and outputs are kept (default .state, read by mlops verify)",
    )
    return parser


def render(summary: dict, seconds: dict[str, float], notes: list[str], console: Console) -> None:
    data = summary["data"]
    console.print(
        f"stack [bold]{summary['stack']}[/] ({summary['region']}), {summary['resources']} resources; "
        f"rows in {data['rows_in']}, accepted {data['rows_accepted']}, quarantined {data['rows_quarantined']}"
    )
    models = Table(title="Model versions", title_justify="left")
    for column in ("version", "auc", "approval status", "learned from (rows, event-time window)"):
        models.add_column(column)
    for m in summary["models"]:
        window = m.get("data_window") or {}
        learned = f"{window.get('rows')} rows, {window.get('strategy')}" + (
            f", {window['data_start']} to {window['data_end']}" if window.get("data_end") else ""
        )
        models.add_row(
            str(m["version"]), "-" if m["auc"] is None else f"{m['auc']:.3f}", m["approval_status"], learned
        )
    console.print(models)
    for line in training_lines(summary):
        console.print(line)
    phases = Table(title="Traffic phases", title_justify="left")
    for column in ("phase", "requests", "drift alarm", "drifted features", "retraining started"):
        phases.add_column(column)
    for p in summary["phases"]:
        phases.add_row(
            p["name"],
            str(p["requests"]),
            str(p["drift_alarm"]),
            ", ".join(p["drifted_features"]),
            str(p["retraining_started"]),
        )
    console.print(phases)
    endpoint = Table(
        title=f"Endpoint {summary['endpoint']['name']} ({summary['endpoint']['strategy']})",
        title_justify="left",
    )
    for column in ("variant", "model version", "weight"):
        endpoint.add_column(column)
    for v in summary["endpoint"]["variants"]:
        endpoint.add_row(v["name"], str(v["model_version"]), str(v["weight"]))
    console.print(endpoint)
    # The total of the rows shown: drawing the dashboard comes after the summary's own seconds.
    timing = Table(title=f"Seconds per phase (total {sum(seconds.values()):.1f} s)", title_justify="left")
    timing.add_column("phase")
    timing.add_column("seconds", justify="right")
    for name, value in seconds.items():
        timing.add_row(name, f"{value:.1f}")
    console.print(timing)
    rollout = summary.get("rollout") or {}
    if rollout:
        console.print(
            f"roll-out of the retrained model ({rollout['strategy']}): {rollout['outcome']}"
            + (f" ({escape(rollout['reason'])})" if rollout["reason"] else "")
        )
    quality = summary.get("quality") or {}
    if quality.get("auc") is not None:
        console.print(
            f"AUC on served traffic with ground truth (rows it never trained on): {quality['auc']:.3f} "
            f"over {quality['labelled']:.0f} labelled predictions of the "
            f"{quality.get('held_out_rows', 0)} held-out rows"
        )
    shadow = quality.get("shadow") or {}
    if shadow.get("compared"):
        console.print(
            f"shadow comparison over {shadow['compared']:.0f} requests: agreement "
            f"{shadow['agreement_rate']:.3f}, challenger AUC {_number(shadow['challenger_auc'])}, "
            f"production AUC {_number(shadow['production_auc'])}"
        )
    iam = summary.get("iam") or {}
    if iam:
        unused = sum(len(actions) for actions in iam["unused"].values())
        console.print(
            f"IAM: {iam['evaluated']} requests authorised as IAM would, {len(iam['denied'])} denied; "
            f"{unused} granted actions unused across {len(iam['unused'])} roles (mlops local --json: iam)"
        )
        for denial in iam["denied"][:5]:
            console.print(
                f"  denied: {escape(denial['principal'])} {denial['action']} on {escape(denial['resource'])}"
            )
    for note in notes:
        console.print(f"note: {escape(note)}")


def training_lines(summary: dict) -> list[str]:
    """What each training run read from the offline store, how often each trigger started a
    retraining, and whether the model versions learned from different windows."""
    lines = []
    for m in summary["models"]:
        w = m.get("data_window") or {}
        if w.get("source") != "offline-store":
            continue
        lines.append(
            f"version {m['version']}: training read {w.get('rows')} records from the offline store "
            f"({w.get('offline_rows')} rows read), window {w.get('data_start')} to {w.get('data_end')} "
            f"({w.get('strategy')}); waited {w.get('seconds_waited', 0):g} s for "
            f"{w.get('records_waited_for')} of the {w.get('records_reported')} records ingestion reported"
        )
    retraining = summary.get("retraining") or {}
    started = retraining.get("started_by_reason") or {}
    if started:
        counts = ", ".join(f"{reason} {n} run{'s' * (n > 1)}" for reason, n in sorted(started.items()))
        verdict = (
            "exactly once per trigger reason"
            if retraining.get("once_per_reason")
            else "more than once for a trigger reason"
        )
        lines.append(f"retraining started {verdict} (TriggerReason: runs): {counts}")
    else:
        lines.append("retraining started: none")
    if len(summary["models"]) > 1:
        versions = " and ".join(str(m["version"]) for m in summary["models"])
        differ = "different windows" if summary.get("windows_differ") else "the same window"
        lines.append(f"model versions {versions} trained on {differ}")
    if summary["data"].get("feedback_records"):
        lines.append(
            f"feedback: {summary['data']['feedback_records']} labelled outcomes of the drifted traffic "
            "ingested as new records before the retraining"
        )
    return lines


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def serve_until_signalled(endpoint_url: str, region: str, training_pipeline: str) -> None:
    """Print how to reach the emulator, then block until SIGINT or SIGTERM."""
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    # Plain prints: the address line is read by scripts, never styled or wrapped.
    print(f"AWS_ENDPOINT_URL={endpoint_url}", flush=True)
    print(
        f"  export AWS_ENDPOINT_URL={endpoint_url} AWS_DEFAULT_REGION={region} "
        "AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing",
        flush=True,
    )
    print(
        f"  aws sagemaker list-endpoints; aws sagemaker list-pipeline-executions --pipeline-name {training_pipeline}",
        flush=True,
    )
    print("  mlops status --stack local; mlops dashboard --stack local --out DIR", flush=True)
    print(
        f"  boto3.client('sagemaker', endpoint_url='{endpoint_url}', region_name='{region}', "
        "aws_access_key_id='testing', aws_secret_access_key='testing')",
        flush=True,
    )
    print("Serving until interrupted (Ctrl-C or SIGTERM).", flush=True)
    stop.wait()


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from localcloud.engine import ROOT
    from mlops.console.status import unknown_stack

    if refused := unknown_stack(args.stack, ROOT):  # before anything starts
        parser.error(refused)
    logging.getLogger("sagemaker").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")
    console = Console()
    if not console.is_terminal:  # piped: lines as long as their content, never a name cut
        console = Console(width=1000)
    try:
        overrides = parse_sets(args.set)
        prepared = prepare(args.schema, args.data, rows=args.rows, seed=args.seed)
    except (ValueError, OSError) as error:
        Console(stderr=True).print(f"[red]mlops local:[/] {escape(str(error))}")
        return 2
    status = console.status("starting")
    scenario = Scenario(
        prepared,
        stack=args.stack,
        port=args.port,
        state_dir=args.state_dir,
        overrides=overrides,
        on_step=lambda name: status.update(f"[bold]{name}[/] ..."),
    )
    try:
        with status:
            summary = scenario.run()
        drawn = scenario.draw_dashboard(args.dashboard) if args.dashboard else ()
        render(summary, scenario.seconds, scenario.notes, console)
        for path in drawn:
            console.print(f"dashboard: {path}", soft_wrap=True)
        console.print(f"outputs: {args.state_dir / (args.stack + '.json')}", soft_wrap=True)
        if args.json:
            args.json.write_text(json.dumps(summary, indent=2) + "\n")
        if args.serve:
            serve_until_signalled(summary["endpoint_url"], summary["region"], scenario.pipelines["training"])
    except StepFailed as error:
        Console(stderr=True).print(
            f"[red]mlops local failed at step {escape(error.step)!r}:[/] {escape(error.cause)}"
        )
        return 1
    finally:
        scenario.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
