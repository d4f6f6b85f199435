"""The stack's deployed dashboard, read back for ``mlops dashboard`` (drawn by ``render_dashboard``).

Reads the dashboard body back from CloudWatch (``GetDashboard``; the name is the stack's
endpoint name, as ``infra.monitoring`` creates it) and, widget by widget, the data it shows:
``GetMetricData`` for every metric series over the body's ``start`` (``-P7D``) and
``DescribeAlarms`` for alarm widgets. ``render_dashboard`` writes ``dashboard.png`` (matplotlib) and
``dashboard.html`` (one self-contained page: inline SVG charts, no script, no external asset),
with one panel per widget of the body, in the body's grid positions.

Metric math: expressions are sent to CloudWatch with the series they use; where the answer
has no values (the local emulator computes no metric math) the expressions the program writes
(numbers, series ids, ``+ - * /`` and ``FILL(id, value)``) are evaluated here on the series
fetched. Anything else is drawn as "not computed".
"""

from __future__ import annotations

import ast
import json
import operator
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd

DEFAULT_PERIOD = 300
MAX_QUERIES = 500  # GetMetricData's limit per call


@dataclass
class Series:
    label: str
    timestamps: list[datetime] = field(default_factory=list)
    values: list[float] = field(default_factory=list)
    note: str = ""
    right: bool = False  # drawn on the right axis ("yAxis": "right")
    period: int = DEFAULT_PERIOD  # seconds a point stands for: farther apart, the line breaks


@dataclass
class Panel:
    """One widget of the body, with what it shows."""

    index: int
    kind: str  # metric | text | alarm
    title: str
    x: int
    y: int
    width: int
    height: int
    series: list[Series] = field(default_factory=list)
    lines: list[tuple[str, float, bool]] = field(default_factory=list)  # (label, value, right axis)
    marks: list[tuple[str, datetime]] = field(default_factory=list)  # vertical: roll-outs
    markdown: str = ""
    alarms: list[tuple[str, str]] = field(default_factory=list)  # (name, state)
    start: datetime | None = None  # the window every chart shares
    end: datetime | None = None


def parse_duration(start: str) -> timedelta:
    """CloudWatch's relative ``start`` (``-P7D``, ``-PT6H``, ``-PT30M``) as a timedelta."""
    match = re.fullmatch(r"-P(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?)?", start or "")
    if not match or not any(match.groups()):
        raise ValueError(f"start: {start!r} is not a relative time like -P7D or -PT6H")
    days, hours, minutes = (int(g or 0) for g in match.groups())
    return timedelta(days=days, hours=hours, minutes=minutes)


def _metric_query(series: list[Any], stat: str, period: int, query_id: str) -> dict[str, Any]:
    options = series[-1] if isinstance(series[-1], dict) else {}
    names = series[:-1] if options else series
    namespace, name, *dims = names
    return {
        "Id": query_id,
        "MetricStat": {
            "Metric": {
                "Namespace": namespace,
                "MetricName": name,
                "Dimensions": [{"Name": k, "Value": v} for k, v in zip(dims[::2], dims[1::2], strict=True)],
            },
            "Period": int(options.get("period", period)),
            "Stat": options.get("stat", stat),
        },
        "ReturnData": True,
    }


def _label(series: list[Any]) -> str:
    options = series[-1] if isinstance(series[-1], dict) else {}
    if "label" in options:
        return options["label"]
    names = series[:-1] if options else series
    dims = dict(zip(names[2::2], names[3::2], strict=False))
    detail = (
        dims.get("Feature") or dims.get("VariantName") or dims.get("PipelineName") or dims.get("RuleName")
    )
    return f"{names[1]} ({detail})" if detail else names[1]


def evaluate(expression: str, values: dict[str, pd.Series]) -> pd.Series:
    """The dashboard's metric math on fetched series: numbers, ids, + - * /, FILL(id, value)."""
    index = sorted(set().union(*(s.index for s in values.values()))) if values else []

    def run(node: ast.AST) -> Any:
        if isinstance(node, ast.Expression):
            return run(node.body)
        if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)):
            return float(node.value)
        if isinstance(node, ast.Name) and node.id in values:
            return values[node.id].reindex(index)
        if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Sub, ast.Mult, ast.Div)):
            op = {
                ast.Add: operator.add,
                ast.Sub: operator.sub,
                ast.Mult: operator.mul,
                ast.Div: operator.truediv,
            }
            return op[type(node.op)](run(node.left), run(node.right))
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id == "FILL"
            and len(node.args) == 2
        ):
            return run(node.args[0]).fillna(run(node.args[1]))
        raise ValueError(f"expression {expression!r}: cannot evaluate {ast.dump(node)[:60]}")

    result = run(ast.parse(expression, mode="eval"))
    if not isinstance(result, pd.Series):
        raise ValueError(f"expression {expression!r}: refers to no series")
    return result.replace([float("inf"), -float("inf")], float("nan")).dropna()


def metric_panel(
    cloudwatch: Any, panel: Panel, properties: dict[str, Any], start: datetime, end: datetime
) -> None:
    stat, period = properties.get("stat", "Average"), int(properties.get("period", DEFAULT_PERIOD))
    queries, shown = [], []
    for n, series in enumerate(properties.get("metrics", [])):
        if isinstance(series[0], dict):  # an expression: [{"expression", "id", "label"}]
            spec = series[0]
            queries.append(
                {"Id": spec.get("id", f"e{n}"), "Expression": spec["expression"], "ReturnData": True}
            )
            shown.append(
                (
                    queries[-1]["Id"],
                    spec.get("label") or spec["expression"],
                    spec["expression"],
                    False,
                    period,
                )
            )
            continue
        options = series[-1] if isinstance(series[-1], dict) else {}
        query = _metric_query(series, stat, period, options.get("id", f"m{n}"))
        queries.append(query)
        if options.get("visible", True):
            shown.append(
                (
                    query["Id"],
                    _label(series),
                    None,
                    options.get("yAxis") == "right",
                    query["MetricStat"]["Period"],
                )
            )
    results: dict[str, pd.Series] = {}
    for first in range(0, len(queries), MAX_QUERIES):
        answer = cloudwatch.get_metric_data(
            MetricDataQueries=queries[first : first + MAX_QUERIES], StartTime=start, EndTime=end
        )
        for result in answer["MetricDataResults"]:
            results[result["Id"]] = pd.Series(result.get("Values", []), index=result.get("Timestamps", []))
    for query_id, label, expression, right, every in shown:
        values, note = results.get(query_id, pd.Series(dtype=float)), ""
        if expression is not None and values.empty:
            try:
                values = evaluate(expression, {k: v for k, v in results.items() if k != query_id})
            except ValueError as exc:
                note = f"not computed: {exc}"
        values = values.sort_index()
        panel.series.append(
            Series(label, list(values.index), [float(v) for v in values.values], note, right, every)
        )
    annotations = properties.get("annotations", {})
    panel.lines = [
        (a.get("label", ""), float(a["value"]), a.get("yAxis") == "right")
        for a in annotations.get("horizontal", [])
    ]
    panel.marks = [
        (a.get("label", ""), pd.Timestamp(a["value"]).to_pydatetime())
        for a in annotations.get("vertical", [])
    ]
    panel.start, panel.end = start, end


def endpoints_of(properties: dict[str, Any]) -> set[str]:
    """The endpoints whose SageMaker metrics a widget draws (its roll-outs are marked on it)."""
    found = set()
    for series in properties.get("metrics", []):
        if isinstance(series[0], dict):
            continue
        names = series[:-1] if isinstance(series[-1], dict) else series
        dims = dict(zip(names[2::2], names[3::2], strict=False))
        if names[0] == "AWS/SageMaker" and "EndpointName" in dims:
            found.add(dims["EndpointName"])
    return found


def deployments(sagemaker: Any, endpoint: str) -> list[tuple[str, datetime]]:
    """The endpoint's deployments as ``DescribeEndpoint`` tells them: its creation, the last
    roll-out's start (its configuration's creation) and end with the outcome, or the one going on.

    CloudWatch holds no series of roll-outs (and a traffic share per variant cannot show a
    blue/green one: both fleets carry the variant's name), so they are drawn as vertical marks.
    """
    from botocore.exceptions import ClientError

    try:
        described = sagemaker.describe_endpoint(EndpointName=endpoint)
    except ClientError:
        return []  # no endpoint (yet): nothing was deployed
    marks = []
    if described.get("CreationTime"):
        marks.append(("endpoint created", described["CreationTime"]))
    pending = described.get("PendingDeploymentSummary") or {}
    failure = described.get("FailureReason") or ""
    if pending.get("StartTime"):
        marks.append((f"roll-out to {pending.get('EndpointConfigName')} started", pending["StartTime"]))
    elif described.get("LastDeploymentConfig") or failure:
        try:
            config = sagemaker.describe_endpoint_config(EndpointConfigName=described["EndpointConfigName"])
            if config.get("CreationTime") and config["CreationTime"] > described.get(
                "CreationTime", config["CreationTime"]
            ):
                marks.append(("roll-out started", config["CreationTime"]))
        except ClientError:
            pass
        outcome = "rolled back" if "rolled back" in failure else "failed" if failure else "completed"
        marks.append((f"roll-out {outcome}", described["LastModifiedTime"]))
    return [
        (label, when.astimezone(UTC) if when.tzinfo else when.replace(tzinfo=UTC)) for label, when in marks
    ]


def read_panels(
    session: Any, dashboard_name: str, now: datetime | None = None, since: datetime | None = None
) -> tuple[dict, list[Panel]]:
    """The deployed body and one Panel per widget, with the data each shows: from the body's
    ``start`` before now, or from ``since`` if later (nothing was published before it).

    Now and since are the cloud's (``mlops.console.clock``): the local cloud's virtual clock
    and its start, or the wall clock on AWS; every chart shares that one window.
    """
    from mlops.console import clock

    if now is None:
        cloud = clock.read(session)
        now, since = cloud.now, since or cloud.started
    cloudwatch = session.client("cloudwatch")
    body = json.loads(cloudwatch.get_dashboard(DashboardName=dashboard_name)["DashboardBody"])
    end = now
    start = max(end - parse_duration(body.get("start", "-P7D")), since or datetime.min.replace(tzinfo=UTC))
    marks: dict[str, list[tuple[str, datetime]]] = {}
    panels = []
    for index, widget in enumerate(body.get("widgets", [])):
        properties = widget.get("properties", {})
        panel = Panel(
            index,
            widget["type"],
            properties.get("title", ""),
            widget.get("x", 0),
            widget.get("y", 0),
            widget.get("width", 6),
            widget.get("height", 6),
        )
        if widget["type"] == "metric":
            metric_panel(cloudwatch, panel, properties, start, end + timedelta(minutes=5))
            panel.end = end
            for endpoint in sorted(endpoints_of(properties)):
                if endpoint not in marks:
                    marks[endpoint] = deployments(session.client("sagemaker"), endpoint)
                panel.marks += [m for m in marks[endpoint] if start <= m[1] <= end + timedelta(minutes=5)]
        elif widget["type"] == "alarm":
            names = [arn.rsplit(":alarm:", 1)[-1] for arn in properties.get("alarms", [])]
            states = {}
            for first in range(0, len(names), 100):  # DescribeAlarms takes at most 100 names
                for alarm in cloudwatch.describe_alarms(AlarmNames=names[first : first + 100])[
                    "MetricAlarms"
                ]:
                    states[alarm["AlarmName"]] = alarm["StateValue"]
            panel.alarms = [(name, states.get(name, "not found")) for name in names]
        elif widget["type"] == "text":
            panel.markdown = properties.get("markdown", "")
        panels.append(panel)
    return body, panels


def serving_line(session: Any, endpoint: str) -> str:
    """What is serving, in a line under the title: the endpoint's status and what its last
    roll-out did (``DescribeEndpoint``, as ``mlops status`` reads it)."""
    from mlops.console.status import endpoint_facts

    facts = endpoint_facts(session.client("sagemaker"), endpoint)
    if facts is None:
        return f"endpoint {endpoint}: none (no model deployed)"
    rollout = facts["rollout"]
    line = f"endpoint {endpoint} {facts['status']} on {facts['config']}; last roll-out: {rollout['outcome']}"
    line += f" ({rollout['strategy']})" if rollout["strategy"] else ""
    line += f" at {rollout['ended']}" if rollout["ended"] else ""
    return line + (f": {rollout['reason']}" if rollout["reason"] else "")
