"""CloudWatch alarm evaluation on the virtual clock, from the metric data stored in the emulator.

At every minute of the clock each metric alarm is evaluated as CloudWatch does: the statistic
(or percentile) of each of the last ``EvaluationPeriods`` complete periods, compared with the
threshold, ``DatapointsToAlarm`` of them breaching for ALARM, missing periods treated as the
alarm's ``TreatMissingData`` says; metric-math alarms evaluate their expression per period
(``FILL``, arithmetic on query ids, constants). A state change (from evaluation or
``SetAlarmState``) updates ``DescribeAlarms``, is recorded for ``DescribeAlarmHistory`` (which
moto lacks), runs the alarm's SNS actions when actions are enabled (the publishes are recorded
on the topic) and emits the "CloudWatch Alarm State Change" event to EventBridge.

Composite alarms (``PutCompositeAlarm``): the rule is checked as AWS checks it when it is put
(:mod:`.alarm_rules`: syntax, at most 10,240 characters and 100 underlying alarms, refused with
AWS's error code), the alarm is evaluated at once (INSUFFICIENT_DATA only until then), and again
after the metric alarms at every minute, composites of composites until nothing changes: ALARM
while the rule holds, else OK. Its state changes are recorded, notified and emitted like a
metric alarm's, with the alarms that triggered it in its state reason.

Also as AWS: a new alarm starts in INSUFFICIENT_DATA (moto starts it OK); putting an existing
alarm again keeps its state and history (moto reset both); metrics published without a timestamp
are stamped with the virtual clock.

Not emulated: the evaluation range looking further back than ``EvaluationPeriods`` when points
are missing (``missing`` and ``ignore`` judge the present points only); percentiles from
``StatisticValues`` (only raw values have percentiles); anomaly-detection bands, composite
rules' ``AT_LEAST``, actions suppressors, ``EvaluateLowSampleCountPercentile``, units; metric-math functions other than
``FILL``; actions other than SNS topics (Auto Scaling, EC2, Systems Manager are ignored).
"""

from __future__ import annotations

import ast
import json
import logging
import math
import operator
from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, datetime
from fractions import Fraction
from typing import Any

from moto.cloudwatch import exceptions as cw_exceptions
from moto.cloudwatch import models as cw_models
from moto.cloudwatch import responses as cw_responses
from moto.sns.models import sns_backends
from moto.utilities.arns import parse_arn

from localcloud.behaviours import alarm_rules, events
from localcloud.behaviours.alarm_messages import (
    STAMP,
    describe_alarm_history,
    event_detail,
    put_composite_alarm,
    sns_message,
    truthy,
)
from localcloud.behaviours.clock import Clock
from localcloud.behaviours.patching import Patcher
from localcloud.emulator import authorisation

log = logging.getLogger(__name__)
OK, ALARM, INSUFFICIENT = "OK", "ALARM", "INSUFFICIENT_DATA"
_COMPARISONS: dict[str, tuple[Callable[[float, float], bool], str]] = {
    "GreaterThanOrEqualToThreshold": (operator.ge, "greater than or equal to"),
    "GreaterThanThreshold": (operator.gt, "greater than"),
    "LessThanThreshold": (operator.lt, "less than"),
    "LessThanOrEqualToThreshold": (operator.le, "less than or equal to"),
}
_OPERATORS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv}


class _LimitExceeded(cw_exceptions.CloudWatchException):
    code = "LimitExceeded"


def _epoch(when: datetime) -> float:
    return (when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp()


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%S.000+0000")


class _MetricIndex:
    """Datapoints of one backend grouped by metric (namespace, name, exact dimension set).

    moto's metric list only grows, so each evaluation indexes just what arrived since the last.
    """

    def __init__(self) -> None:
        self.seen = 0
        self.points: dict[tuple, list[Any]] = defaultdict(list)

    def update(self, data: list[Any]) -> None:
        if len(data) < self.seen:  # the backend was reset
            self.seen, self.points = 0, defaultdict(list)
        for datum in data[self.seen :]:
            self.points[_key(datum.namespace, datum.name, datum.dimensions)].append(datum)
        self.seen = len(data)


def _key(namespace: str, name: str, dimensions: list[Any]) -> tuple:
    return (namespace, name, frozenset((d.name, d.value) for d in dimensions))


def statistic(stat: str, datums: list[Any]) -> float | None:
    """One CloudWatch statistic (or ``pNN`` percentile) of the datapoints of one period."""
    if not datums:
        return None
    raw = [d.value for d in datums if hasattr(d, "value")]
    aggregated = [d for d in datums if not hasattr(d, "value")]
    count = len(raw) + sum(d.sample_count for d in aggregated)
    total = sum(raw) + sum(d.sum for d in aggregated)
    if stat == "SampleCount":
        return float(count)
    if stat == "Sum":
        return float(total)
    if stat == "Average":
        return total / count if count else None
    if stat == "Minimum":
        return min([*raw, *(d.min for d in aggregated)])
    if stat == "Maximum":
        return max([*raw, *(d.max for d in aggregated)])
    if stat.startswith("p") and raw:
        # Nearest rank: the smallest value with at least pNN% of the values at or below it.
        # Exact arithmetic: in floats, 99.9 / 100 * 1000 is a hair above 999, a rank too high.
        ordered = sorted(raw)
        rank = math.ceil(Fraction(stat[1:]) * len(ordered) / 100)
        return ordered[max(rank, 1) - 1]
    return None


def evaluate_expression(expression: str, values: dict[str, float | None]) -> float | None:
    """Evaluate a metric-math expression for one period; a missing operand makes the result missing."""

    def walk(node: ast.AST) -> float | None:
        if isinstance(node, ast.Expression):
            return walk(node.body)
        if isinstance(node, ast.Constant) and isinstance(node.value, int | float):
            return float(node.value)
        if isinstance(node, ast.Name):
            if node.id not in values:
                raise ValueError(f"Metrics: expression {expression!r} uses unknown id {node.id!r}")
            return values[node.id]
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            inner = walk(node.operand)
            return None if inner is None else -inner
        if isinstance(node, ast.BinOp) and type(node.op) in _OPERATORS:
            left, right = walk(node.left), walk(node.right)
            if left is None or right is None:
                return None
            if isinstance(node.op, ast.Div) and right == 0:
                return None  # CloudWatch drops a point divided by zero
            return _OPERATORS[type(node.op)](left, right)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "FILL":
            series, fill = (walk(arg) for arg in node.args)
            return fill if series is None else series
        raise ValueError(f"Metrics: expression {expression!r} uses what the emulator cannot evaluate")

    return walk(ast.parse(expression, mode="eval"))


def period_values(
    alarm: Any, index: _MetricIndex, now: datetime
) -> tuple[int, list[tuple[float, float | None]]]:
    """The alarm's period and its value in each of the last ``EvaluationPeriods`` complete periods, newest first."""
    if alarm.metric_data_queries:
        stats = [q for q in alarm.metric_data_queries if q.metric_stat is not None]
        period = int(stats[0].metric_stat.period) if stats else 60
    else:
        period = int(alarm.period)
    end = math.floor(_epoch(now) / period) * period
    starts = [end - (i + 1) * period for i in range(int(alarm.evaluation_periods))]

    def series(namespace: str, name: str, dimensions: list[Any], stat: str) -> list[float | None]:
        datums = index.points.get(_key(namespace, name, dimensions), [])
        buckets: dict[float, list[Any]] = defaultdict(list)
        for datum in datums:
            stamp = _epoch(datum.timestamp)
            if starts[-1] <= stamp < end:
                buckets[math.floor((stamp - starts[-1]) / period) * period + starts[-1]].append(datum)
        return [statistic(stat, buckets.get(start, [])) for start in starts]

    if not alarm.metric_data_queries:
        stat = alarm.extended_statistic or alarm.statistic
        return period, list(
            zip(starts, series(alarm.namespace, alarm.metric_name, alarm.dimensions, stat), strict=True)
        )
    by_id: dict[str, list[float | None]] = {}
    for query in alarm.metric_data_queries:
        if query.metric_stat is not None:
            metric = query.metric_stat.metric
            by_id[query.id] = series(
                metric.namespace, metric.metric_name, metric.dimensions, query.metric_stat.stat
            )
    for query in alarm.metric_data_queries:
        if query.expression:
            by_id[query.id] = [
                evaluate_expression(query.expression, {k: v[i] for k, v in by_id.items()})
                for i in range(len(starts))
            ]
    returned = [q for q in alarm.metric_data_queries if truthy(q.return_data)]
    chosen = returned[0] if returned else next(q for q in alarm.metric_data_queries if q.expression)
    return period, list(zip(starts, by_id[chosen.id], strict=True))


def decide(alarm: Any, values: list[tuple[float, float | None]]) -> tuple[str, str] | None:
    """(new state, reason) for these period values, or None to keep the state (``ignore``, all missing)."""
    compare, words = _COMPARISONS[alarm.comparison_operator]
    treat = alarm.treat_missing_data or "missing"
    needed = int(alarm.datapoints_to_alarm or alarm.evaluation_periods)
    present = [(start, v) for start, v in values if v is not None]
    if not present and treat in ("missing", "ignore"):
        if treat == "ignore":
            return None
        return INSUFFICIENT, f"Insufficient Data: {len(values)} datapoints were unknown."
    breaching = sum(1 for _, v in present if compare(v, alarm.threshold))
    missing = len(values) - len(present)
    if treat == "breaching":
        breaching += missing
    shown = ", ".join(f"{v} ({datetime.fromtimestamp(s, UTC):%d/%m/%y %H:%M:%S})" for s, v in present)
    judged = len(values) if treat in ("breaching", "notBreaching") else len(present)
    state = ALARM if breaching >= needed else OK
    verb = "were" if state == ALARM else "were not"
    reason = (
        f"Threshold Crossed: {breaching} out of the last {judged} datapoints [{shown}] {verb} "
        f"{words} the threshold ({alarm.threshold}) (minimum {needed} datapoints for OK -> ALARM transition)."
    )
    return state, reason


def _composite_reason(
    tree: tuple[Any, ...], states: dict[str, str], backend: Any, state: str
) -> tuple[str, str]:
    """The state reason and its data: the underlying alarms in a state the rule tests for."""
    alarms = [backend.alarms[n] for n in alarm_rules.triggering(tree, states) if n in backend.alarms]
    data = {
        "triggeringAlarms": [
            {
                "arn": a.alarm_arn,
                "state": {"value": a.state_value, "timestamp": a.state_updated_timestamp.strftime(STAMP)},
            }
            for a in alarms
        ]
    }
    named = ", ".join(f"{a.alarm_arn} is {a.state_value}" for a in alarms) or "no underlying alarm matches"
    return f"{named}: the alarm rule is {'true' if state == ALARM else 'false'}", json.dumps(data)


def _without_empty_periods(original: Callable[..., Any]) -> Callable[..., Any]:
    """GetMetricData leaves out a period without a value, as CloudWatch does (moto answered it as
    a null, which it then cannot serialize: a 500 for a percentile of statistic-set data)."""

    def get_metric_data(self: Any, *args: Any, **kwargs: Any) -> list[dict[str, Any]]:
        results = original(self, *args, **kwargs)
        for result in results:
            kept = [
                (t, v) for t, v in zip(result["timestamps"], result["values"], strict=True) if v is not None
            ]
            result["timestamps"], result["values"] = [t for t, _ in kept], [v for _, v in kept]
        return results

    return get_metric_data


class AlarmBehaviour:
    """Evaluates every alarm of every account and region on each clock step."""

    def __init__(self, clock: Clock, patcher: Patcher) -> None:
        self.clock = clock
        behaviour = self
        patcher.set(cw_models, "utcnow", clock.naive_now)

        def put_metric_alarm(original_put: Callable[..., Any]) -> Callable[..., Any]:
            return lambda backend, name, *args, **kwargs: behaviour._put(
                original_put, backend, name, *args, **kwargs
            )

        def update_state(original_update: Callable[..., Any]) -> Callable[..., Any]:
            def update(alarm: Any, reason: str, reason_data: str, state_value: str) -> None:
                old = {"stateValue": alarm.state_value, "stateReason": alarm.state_reason}
                old_timestamp = alarm.state_updated_timestamp
                original_update(alarm, reason, reason_data, state_value)
                behaviour._changed(alarm, old, old_timestamp)

            return update

        patcher.wrap(cw_models.CloudWatchBackend, "put_metric_alarm", put_metric_alarm)
        patcher.wrap(cw_models.Alarm, "update_state", update_state)
        patcher.wrap(cw_models.CloudWatchBackend, "get_metric_data", _without_empty_periods)
        # Dimensions are a set: moto sorts them to compare, with an ordering that is not one
        # (name < name and value < name), so a query naming them in another order found nothing.
        patcher.set(
            cw_models.Dimension, "__lt__", lambda a, b: (a.name, a.value or "") < (b.name, b.value or "")
        )
        patcher.set(cw_responses.CloudWatchResponse, "describe_alarm_history", describe_alarm_history)
        patcher.set(cw_responses.CloudWatchResponse, "put_composite_alarm", put_composite_alarm)
        clock.subscribe(self.evaluate_all)
        patcher.on_restore(lambda: clock.unsubscribe(self.evaluate_all))

    def _put(
        self, original_put: Callable[..., Any], backend: Any, name: str, *args: Any, **kwargs: Any
    ) -> Any:
        """PutMetricAlarm as AWS: a new alarm is unchecked; an existing one keeps its state and history.

        PutCompositeAlarm (moto puts it through here, with ``rule``) first checks the rule.
        """
        rule = kwargs.get("rule")
        if rule is not None:
            try:
                alarm_rules.check(rule)
            except alarm_rules.RuleRefused as refused:
                error = _LimitExceeded if refused.code == "LimitExceeded" else cw_exceptions.ValidationError
                raise error(refused.message) from None
        previous = backend.alarms.get(name)
        alarm = original_put(backend, name, *args, **kwargs)
        if previous is None:
            alarm.state_value, alarm.state_reason = INSUFFICIENT, "Unchecked: Initial alarm creation"
            alarm.mlops_history = []
            verb = "created"
        else:
            for attr in (
                "state_value",
                "state_reason",
                "state_reason_data",
                "state_updated_timestamp",
                "history",
            ):
                setattr(alarm, attr, getattr(previous, attr))
            alarm.mlops_history = getattr(previous, "mlops_history", [])
            verb = "updated"
        summary = f'Alarm "{name}" {verb}'
        self._history(alarm, "ConfigurationUpdate", summary, {"version": "1.0", "type": verb.capitalize()})
        if rule is not None:  # evaluated as soon as it is put, as AWS does
            self.evaluate_composites(backend)
        return alarm

    def _history(self, alarm: Any, kind: str, summary: str, data: dict[str, Any]) -> None:
        if not hasattr(alarm, "mlops_history"):
            alarm.mlops_history = []
        alarm.mlops_history.append(
            {
                "AlarmName": alarm.name,
                "AlarmType": "CompositeAlarm" if alarm.rule else "MetricAlarm",
                "Timestamp": self.clock.naive_now(),
                "HistoryItemType": kind,
                "HistorySummary": summary,
                "HistoryData": json.dumps(data),
            }
        )

    def evaluate_all(self, now: datetime) -> None:
        for regions in list(cw_models.cloudwatch_backends.values()):
            for backend in list(regions.values()):
                # Kept on the backend itself: a reset emulator gets new backends and new indexes.
                index = backend.__dict__.setdefault("mlops_metric_index", _MetricIndex())
                index.update(backend.metric_data)
                for alarm in list(backend.alarms.values()):
                    if alarm.rule is None and alarm.comparison_operator in _COMPARISONS:
                        try:
                            self.evaluate(alarm, index, now)
                        except (ValueError, TypeError, KeyError) as error:
                            # One alarm the emulator cannot evaluate must not stop the clock.
                            log.warning("alarm %s not evaluated: %s", alarm.name, error)
                self.evaluate_composites(backend)

    def evaluate_composites(self, backend: Any) -> None:
        """Each composite alarm from its rule, until no state changes (composites of composites)."""
        composites = [a for a in backend.alarms.values() if a.rule is not None]
        for _ in range(len(composites) + 1):
            states = {}
            for alarm in backend.alarms.values():
                states[alarm.name] = states[alarm.alarm_arn] = alarm.state_value
            changed = False
            for alarm in composites:
                try:
                    tree = alarm_rules.parse(alarm.rule)
                except alarm_rules.RuleRefused as error:  # put before the behaviours were installed
                    log.warning("composite alarm %s not evaluated: %s", alarm.name, error)
                    continue
                state = ALARM if alarm_rules.evaluate(tree, states) else OK
                if state != alarm.state_value:
                    alarm.update_state(*_composite_reason(tree, states, backend, state), state)
                    changed = True
            if not changed:
                return

    def evaluate(self, alarm: Any, index: _MetricIndex, now: datetime) -> None:
        period, values = period_values(alarm, index, now)
        outcome = decide(alarm, values)
        if outcome is None or outcome[0] == alarm.state_value:
            return
        state, reason = outcome
        data = {
            "version": "1.0",
            "queryDate": _iso(_epoch(now)),
            "startDate": _iso(values[-1][0]),
            "period": period,
            "recentDatapoints": [v for _, v in reversed(values) if v is not None],
            "threshold": alarm.threshold,
            "evaluatedDatapoints": [
                {"timestamp": _iso(s), **({"value": v} if v is not None else {})} for s, v in values
            ],
        }
        if not alarm.metric_data_queries:
            data["statistic"] = alarm.extended_statistic or alarm.statistic
        alarm.update_state(reason, json.dumps(data), state)

    def _changed(self, alarm: Any, old: dict[str, str], old_timestamp: datetime) -> None:
        new = {
            "stateValue": alarm.state_value,
            "stateReason": alarm.state_reason,
            "stateReasonData": json.loads(alarm.state_reason_data or "{}"),
        }
        self._history(
            alarm,
            "StateUpdate",
            f"Alarm updated from {old['stateValue']} to {alarm.state_value}",
            {"version": "1.0", "oldState": old, "newState": new},
        )
        arn = parse_arn(alarm.alarm_arn)
        actions = {
            ALARM: alarm.alarm_actions,
            OK: alarm.ok_actions,
            INSUFFICIENT: alarm.insufficient_data_actions,
        }
        if alarm.actions_enabled:
            for action in actions[alarm.state_value] or []:
                self._run_action(alarm, action, old["stateValue"], arn)
        events.emit(
            arn.account,
            arn.region,
            source="aws.cloudwatch",
            detail_type="CloudWatch Alarm State Change",
            resources=[alarm.alarm_arn],
            detail=event_detail(alarm, old, old_timestamp),
        )

    def _run_action(self, alarm: Any, action: str, old_state: str, arn: Any) -> None:
        target = parse_arn(action)
        if target.service != "sns":
            return
        topic = sns_backends[target.account][target.region].topics.get(action)
        if topic is None:
            self._history(
                alarm,
                "Action",
                f"Failed to execute action {action}",
                {"actionState": "Failed", "notificationResource": action},
            )
            return
        try:
            # CloudWatch publishes as itself: the topic's policy, and the key policy of an
            # encrypted topic, must allow cloudwatch.amazonaws.com for this alarm.
            authorisation.act_as_service("cloudwatch.amazonaws.com", alarm.alarm_arn, "sns:Publish", action)
            key = topic.kms_master_key_id
            if key:
                key_arn = authorisation.kms_key_arn(key, target.region)
                for kms_action in ("kms:GenerateDataKey", "kms:Decrypt"):
                    authorisation.act_as_service(
                        "cloudwatch.amazonaws.com", alarm.alarm_arn, kms_action, key_arn
                    )
        except authorisation.AccessDenied as denial:
            self._history(
                alarm,
                "Action",
                f"Failed to execute action {action}. Received error: {denial}",
                {"actionState": "Failed", "notificationResource": action},
            )
            return
        message = sns_message(alarm, old_state, arn)
        topic.publish(
            json.dumps(message), subject=f'{alarm.state_value}: "{alarm.name}" in {arn.region}'[:100]
        )
        self._history(
            alarm,
            "Action",
            f"Successfully executed action {action}",
            {"actionState": "Succeeded", "notificationResource": action},
        )
