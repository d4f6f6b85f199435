"""The rich view of ``mlops status``: the facts ``status.collect`` gathered, as panels and tables."""

from __future__ import annotations

from typing import Any

from rich.console import Group
from rich.panel import Panel
from rich.table import Table

_STATE_STYLE = {"ALARM": "bold red", "OK": "green", "INSUFFICIENT_DATA": "yellow"}
_STATUS_STYLE = {"Succeeded": "green", "Failed": "bold red", "Executing": "cyan", "Stopped": "yellow"}


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
    table = Table(show_edge=False)
    for column in ("variant", "weight", "instances", "role"):
        table.add_column(column)
    for v in endpoint["variants"]:
        table.add_row(
            v["name"], _fmt(v["weight"], 2), _fmt(v["instances"]), "shadow" if v["shadow"] else "production"
        )
    style = "green" if endpoint["status"] == "InService" else "yellow"
    rollback = "[bold red]rolled back" if endpoint["rolled_back"] else "no rollback"
    lines = [
        f"[bold]{endpoint['name']}[/] [{style}]{endpoint['status']}[/]  config {endpoint['config']}",
        f"last deployment: {endpoint['last_deployment']}, {rollback}"
        + (f" ({endpoint['failure_reason']})" if endpoint["failure_reason"] else ""),
    ]
    return Panel(Group(*lines, table), title="Endpoint")


def _alarms(facts: dict[str, Any]) -> Panel:
    table = Table(show_edge=False)
    for column in ("alarm", "state", "since"):
        table.add_column(column)
    for alarm in facts["alarms"]:
        state = alarm["state"]
        table.add_row(alarm["name"], f"[{_STATE_STYLE.get(state, '')}]{state}", _fmt(alarm["since"]))
    firing = len(facts["alarms_in_alarm"])
    return Panel(table, title=f"Alarms ({len(facts['alarms'])}, {firing} in ALARM)")


def _executions(facts: dict[str, Any]) -> Panel:
    table = Table(show_edge=False)
    for column in ("pipeline", "status", "trigger", "started", "seconds", "failure reason"):
        table.add_column(column)
    for e in facts["executions"]:
        status = e["status"]
        table.add_row(
            e["pipeline"],
            f"[{_STATUS_STYLE.get(status, '')}]{status}",
            _fmt(e["trigger_reason"]),
            _fmt(e["started"]),
            _fmt(e["seconds"], 1),
            _fmt(e["failure_reason"]),
        )
    return Panel(table, title="Pipeline executions (latest first)")


def _models(facts: dict[str, Any]) -> Panel:
    table = Table(show_edge=False)
    for column in ("version", "approval", "AUC", "created"):
        table.add_column(column)
    for m in facts["models"]:
        table.add_row(_fmt(m["version"]), m["approval_status"] or "-", _fmt(m["auc"]), _fmt(m["created"]))
    return Panel(table, title="Model versions")


def _drift_and_shadow(facts: dict[str, Any]) -> Panel:
    table = Table(show_edge=False)
    table.add_column("feature")
    table.add_column("PSI", justify="right")
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
    title = f"[bold]{facts['model']}[/] · stack [bold]{facts['stack']}[/] · {facts['region']} · {facts['read_at']}"
    return Group(
        title,
        _endpoint(facts),
        _alarms(facts),
        _executions(facts),
        _models(facts),
        _drift_and_shadow(facts),
        _maturity(facts),
    )
