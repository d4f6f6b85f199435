"""EventBridge Scheduler schedules fire on the virtual clock and start their targets.

At every clock step each ENABLED schedule of every account and region fires once for each of
its times in the step: ``rate(n unit)`` every n units from the schedule's creation (or its
``StartDate``), ``cron(minutes hours day-of-month month day-of-week year)`` in the schedule's
time zone, ``at(yyyy-mm-ddThh:mm:ss)`` once (deleted afterwards when ``ActionAfterCompletion``
is ``DELETE``); nothing before ``StartDate`` or after ``EndDate``. A DISABLED schedule never
fires and does not catch up when enabled again. The target is started as EventBridge starts one
(:mod:`.targets`: SageMaker pipeline with its parameters, Lambda, SNS, API destination) or, for
SQS, sent its ``Input``; the payload is the target's ``Input`` (``{}`` without one).

Not emulated: flexible time windows (each schedule fires at its exact time), retry policies and
dead-letter queues, cron ``L``, ``W`` and ``#`` (a schedule using them never fires and its
invocation is recorded as failed), universal targets other than the above.
"""

from __future__ import annotations

import json
import logging
import re
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from moto.scheduler import models as scheduler_models
from moto.sqs.models import sqs_backends
from moto.utilities.arns import parse_arn

from localcloud.behaviours import events
from localcloud.behaviours.clock import Clock
from localcloud.behaviours.patching import Patcher
from localcloud.emulator import authorisation

log = logging.getLogger(__name__)
INVOCATIONS: list[dict[str, Any]] = []
_UNITS = {"minute": 60, "minutes": 60, "hour": 3600, "hours": 3600, "day": 86400, "days": 86400}
_MONTHS = {
    m: i + 1
    for i, m in enumerate(
        ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"]
    )
}
_DAYS = {d: i + 1 for i, d in enumerate(["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"])}
# (low, high, names) of each cron field, in AWS's order.
_FIELDS = [(0, 59, {}), (0, 23, {}), (1, 31, {}), (1, 12, _MONTHS), (1, 7, _DAYS), (1970, 2199, {})]


def _values(field: str, low: int, high: int, names: dict[str, int]) -> set[int] | None:
    """The values a cron field allows; None for ``?`` (any)."""
    if field in ("*", "?"):
        return None
    allowed: set[int] = set()
    for part in field.split(","):
        part_range, _, step = part.partition("/")
        if part_range == "*":
            start, end = low, high
        elif "-" in part_range:
            a, b = part_range.split("-")
            start, end = names.get(a.upper()) or int(a), names.get(b.upper()) or int(b)
        else:
            start = names.get(part_range.upper()) or int(part_range)
            end = high if step else start
        allowed.update(range(start, end + 1, int(step) if step else 1))
    return allowed


def cron_matches(expression: str, moment: datetime) -> bool:
    """Whether AWS's six-field cron expression fires at this minute (local to the schedule's zone)."""
    fields = expression.split()
    if len(fields) != 6:
        raise ValueError(f"ScheduleExpression: cron({expression}) needs 6 fields, got {len(fields)}")
    if re.search(r"[LW#]", expression):
        raise ValueError(
            f"ScheduleExpression: cron({expression}) uses L, W or #, which the emulator does not fire"
        )
    dow = (moment.weekday() + 1) % 7 + 1  # AWS: 1 is Sunday
    actual = [moment.minute, moment.hour, moment.day, moment.month, dow, moment.year]
    for field, (low, high, names), value in zip(fields, _FIELDS, actual, strict=True):
        allowed = _values(field, low, high, names)
        if allowed is not None and value not in allowed:
            return False
    return True


def _epoch(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp()
    return float(value)


def fire_times(schedule: Any, after: float, until: float) -> list[float]:
    """The schedule's times in (after, until], epoch seconds."""
    expression = schedule.schedule_expression.strip()
    kind, _, body = expression.partition("(")
    body = body.rstrip(")")
    if kind == "rate":
        amount, unit = body.split()
        period = int(amount) * _UNITS[unit]
        base = _epoch(schedule.start_date) or float(schedule.creation_date)
        first = max(1, int((after - base) // period) + 1)
        times = []
        t = base + first * period
        while t <= until:
            times.append(t)
            t += period
        return times
    if kind == "at":
        zone = ZoneInfo(schedule.schedule_expression_timezone or "UTC")
        t = datetime.fromisoformat(body).replace(tzinfo=zone).timestamp()
        return [t] if after < t <= until else []
    if kind == "cron":
        zone = ZoneInfo(schedule.schedule_expression_timezone or "UTC")
        minute = (int(after) // 60 + 1) * 60
        times = []
        while minute <= until:
            if cron_matches(body, datetime.fromtimestamp(minute, zone)):
                times.append(float(minute))
            minute += 60
        return times
    raise ValueError(f"ScheduleExpression: {expression!r} is not rate(...), cron(...) or at(...)")


# What the schedule's role must allow for each kind of target Scheduler starts.
_TARGET_ACTIONS = {"sagemaker": "sagemaker:StartPipelineExecution", "sqs": "sqs:SendMessage"}


def _start_target(schedule: Any) -> None:
    target = schedule.target
    arn = parse_arn(target["Arn"])
    if arn.service in _TARGET_ACTIONS:
        # Scheduler always acts as the schedule's role (RoleArn is required); the source it
        # names when assuming it is the schedule's group (aws:SourceArn, as AWS documents).
        group = schedule.arn.split(":schedule/", 1)[0] + f":schedule-group/{schedule.group_name}"
        action = _TARGET_ACTIONS[arn.service]
        authorisation.act_as_role(target["RoleArn"], "scheduler.amazonaws.com", group, action, target["Arn"])
    payload = target.get("Input") or "{}"
    delivery = events.delivery_for(target["Arn"])
    if delivery is not None:
        delivery(target, json.loads(payload))
    elif arn.service == "sqs":
        sqs_backends[arn.account][arn.region].send_message(queue_name=arn.resource_id, message_body=payload)
    else:
        raise ValueError(f"Target.Arn: {target['Arn']} is a target the emulator does not start")


class SchedulerBehaviour:
    def __init__(self, clock: Clock, patcher: Patcher) -> None:
        self.clock = clock
        patcher.set(scheduler_models, "unix_time", lambda: clock.now().timestamp())
        clock.subscribe(self.fire_due)
        patcher.on_restore(lambda: clock.unsubscribe(self.fire_due))
        patcher.on_restore(INVOCATIONS.clear)

    def fire_due(self, now: datetime) -> None:
        until = now.timestamp()
        for regions in list(scheduler_models.scheduler_backends.values()):
            for backend in list(regions.values()):
                for group in list(backend.schedule_groups.values()):
                    for schedule in list(group.schedules.values()):
                        self._check(backend, schedule, until)

    def _check(self, backend: Any, schedule: Any, until: float) -> None:
        after = getattr(schedule, "mlops_checked", float(schedule.creation_date))
        schedule.mlops_checked = until
        if schedule.state != "ENABLED":
            return
        try:
            times = fire_times(schedule, after, until)
        except ValueError as error:
            INVOCATIONS.append({"schedule": schedule.arn, "error": str(error)})
            return
        start, end = _epoch(schedule.start_date), _epoch(schedule.end_date)
        for t in times:
            if (start is not None and t < start) or (end is not None and t > end):
                continue
            record: dict[str, Any] = {
                "schedule": schedule.arn,
                "time": datetime.fromtimestamp(t, UTC).isoformat(),
            }
            try:
                _start_target(schedule)
            except Exception as error:  # recorded: Scheduler retries or dead-letters, never stops
                log.warning(
                    "schedule %s failed to start %s: %s", schedule.name, schedule.target["Arn"], error
                )
                record["error"] = f"{type(error).__name__}: {error}"
            INVOCATIONS.append(record)
        if (
            times
            and schedule.schedule_expression.startswith("at(")
            and schedule.action_after_completion == "DELETE"
        ):
            backend.delete_schedule(schedule.group_name, schedule.name)
