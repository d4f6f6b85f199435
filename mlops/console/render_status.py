"""The rich view of ``mlops status``: the facts ``status.collect`` gathered, as panels and tables.

Names (alarms, pipelines, variants) and values (times, numbers) are never cut nor wrapped
inside: their columns do not wrap, and panels are as wide as their content (a narrow terminal
wraps whole lines, never a name in two).
"""

from __future__ import annotations

from typing import Any

from rich.console import Group
from rich.markup import escape
from rich.panel import Panel as _Panel
from rich.table import Table

_STATE_STYLE = {"ALARM": "bold red", "OK": "green", "INSUFFICIENT_DATA": "yellow"}
_STATUS_STYLE = {"Succeeded": "green", "Failed": "bold red", "Executing": "cyan", "Stopped": "yellow"}


def Panel(renderable: Any, title: str) -> _Panel:
    return _Panel(renderable, title=title, expand=False, title_align="left")


def _table(*columns: str) -> Table:
    table = Table(show_edge=False)
    for column in columns:
        table.add_column(column, no_wrap=True, overflow="ignore")
    return table


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _endpoint(facts: dict[str, Any]) -> Panel:
    endpoint = facts["endpoint"]
    if endpoint is None:
        return Panel(f"[yellow]no endpoint {facts['endpoint_name']} (no model deployed)", title="Endpoint")
    table = _table("variant", "weight", "instances", "role")
    for v in endpoint["variants"]:
        table.add_row(
            v["name"], _fmt(v["weight"], 2), _fmt(v["instances"]), "shadow" if v["shadow"] else "production"
        )
    style = "green" if endpoint["status"] == "InService" else "yellow"
    rollout = endpoint["rollout"]
    outcome_style = {"completed": "green", "rolled back": "bold red", "failed": "bold red"}.get(
        rollout["outcome"], "yellow"
    )
    lines = [
        f"[bold]{endpoint['name']}[/] [{style}]{endpoint['status']}[/]  config {endpoint['config']}",
        f"last roll-out: [{outcome_style}]{rollout['outcome']}[/]"
        + (f" ({rollout['strategy']})" if rollout["strategy"] else "")
        + (f" at {rollout['ended']}" if rollout["ended"] else "")
        + (f": {escape(rollout['reason'])}" if rollout["reason"] else ""),
    ]
    return Panel(Group(*lines, table), title="What is serving")


def _alarms(facts: dict[str, Any]) -> Panel:
    table = _table("alarm", "state", "since")
    for alarm in facts["alarms"]:
        state = alarm["state"]
        table.add_row(alarm["name"], f"[{_STATE_STYLE.get(state, '')}]{state}", _fmt(alarm["since"]))
    firing = len(facts["alarms_in_alarm"])
    return Panel(table, title=f"Alarms ({len(facts['alarms'])}, {firing} in ALARM)")


def _executions(facts: dict[str, Any]) -> Panel:
    table = _table("pipeline", "status", "trigger", "started", "seconds", "failure reason")
    for e in facts["executions"]:
        status = e["status"]
        table.add_row(
            e["pipeline"],
            f"[{_STATUS_STYLE.get(status, '')}]{status}",
            _fmt(e["trigger_reason"]),
            _fmt(e["started"]),
            _fmt(e["seconds"], 1),
            escape(_fmt(e["failure_reason"])),
        )
    retraining = facts.get("last_retraining")
    last = (
        f"last retraining: [bold]{retraining['trigger_reason']}[/] at {retraining['started']}, "
        f"{retraining['status']}"
        if retraining
        else "last retraining: none (only runs started by hand)"
    )
    return Panel(Group(last, table), title="Pipeline executions (latest first)")


def _models(facts: dict[str, Any]) -> Panel:
    table = _table("version", "approval", "AUC", "created")
    for m in facts["models"]:
        table.add_row(_fmt(m["version"]), m["approval_status"] or "-", _fmt(m["auc"]), _fmt(m["created"]))
    return Panel(table, title="Model versions")


def _drift_and_shadow(facts: dict[str, Any]) -> Panel:
    table = _table("feature")
    table.add_column("PSI", justify="right", no_wrap=True)
    for d in facts["drifted_features"]:
        table.add_row(d["feature"], _fmt(d["psi"]))
    parts: list[Any] = [table if facts["drifted_features"] else "no drift published yet"]
    for variant, figures in facts["shadow"].items():
        parts.append(
            f"shadow [bold]{variant}[/]: agreement {_fmt(figures['agreement_rate'])}, "
            f"mean |Δp| {_fmt(figures['mean_abs_probability_difference'])}, "
            f"AUC {_fmt(figures['challenger_auc'])} vs production {_fmt(figures['production_auc'])} "
            f"on {_fmt(figures['labelled'])} labelled requests"
        )
    return Panel(Group(*parts), title="Most drifted features now; shadow comparison")


def _maturity(facts: dict[str, Any]) -> Panel:
    maturity = facts["maturity"]
    if maturity is None:
        return Panel(f"no Pulumi.{facts['stack']}.yaml to judge from", title="MLOps maturity")
    lines = [f"[bold]level {maturity['level']}[/]: {maturity['name']}"]
    lines += [f"  missing for level {maturity['level'] + 1}: {m}" for m in maturity["missing"]]
    return Panel("\n".join(lines), title="MLOps maturity")


def render(facts: dict[str, Any]) -> Group:
    title = (
        f"[bold]{facts['model']}[/] · stack [bold]{facts['stack']}[/] · {facts['region']} · "
        f"{facts['read_at']} ({facts.get('clock', 'wall clock')})"
    )
    return Group(
        title,
        _endpoint(facts),
        _alarms(facts),
        _executions(facts),
        _models(facts),
        _drift_and_shadow(facts),
        _maturity(facts),
    )
