"""The virtual clock: minute steps, listeners, wall-time following, and its HTTP control route."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest
import requests

from localcloud.behaviours import Clock

START = datetime(2026, 1, 5, 12, 0, 30, tzinfo=UTC)


def test_advance_runs_listeners_at_every_minute_crossed_and_at_the_end():
    clock = Clock(START)
    seen: list[datetime] = []
    clock.subscribe(seen.append)
    clock.advance(150)
    assert seen == [
        START + timedelta(seconds=30),
        START + timedelta(seconds=90),
        START + timedelta(seconds=150),
    ]
    assert clock.now() == START + timedelta(seconds=150)


def test_the_clock_never_goes_back_and_wants_utc():
    with pytest.raises(ValueError, match="seconds: -1 is negative"):
        Clock(START).advance(-1)
    with pytest.raises(ValueError, match="start: expected a timezone-aware"):
        Clock(datetime(2026, 1, 1))


def test_following_wall_time_accelerated_moves_the_clock():
    clock = Clock(START)
    clock.follow(speed=600, interval=0.05)
    time.sleep(0.3)
    clock.stop_following()
    moved = (clock.now() - START).total_seconds()
    assert 60 <= moved <= 600 * 2  # 0.3 s at 600x is ~3 minutes; generous for a busy machine
    assert not clock.following


def test_control_route_advances_the_emulator_clock(emulator, moto_server):
    answer = requests.post(f"{moto_server}/_mlops/clock", json={"advance": 600}, timeout=10)
    assert answer.status_code == 200
    assert answer.json()["now"] == "2026-01-05T12:10:00+00:00"
    assert emulator.clock.now() == datetime(2026, 1, 5, 12, 10, tzinfo=UTC)
    assert requests.get(f"{moto_server}/_mlops/clock", timeout=10).json()["following"] is False


def test_control_route_says_where_the_clock_started(emulator, moto_server):
    # Readers (mlops status, mlops dashboard) look back no further: nothing happened before.
    requests.post(f"{moto_server}/_mlops/clock", json={"advance": 3600}, timeout=10)
    state = requests.get(f"{moto_server}/_mlops/clock", timeout=10).json()
    assert (state["started"], state["now"]) == ("2026-01-05T12:00:00+00:00", "2026-01-05T13:00:00+00:00")


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"advance": -5}, "advance: expected a number of seconds at or above 0"),
        ({"advance": "ten"}, "advance: expected a number"),
        ({"rewind": 5}, "body: expected one of"),
    ],
)
def test_control_route_refuses_bad_bodies_naming_the_key(emulator, moto_server, body, message):
    answer = requests.post(f"{moto_server}/_mlops/clock", json=body, timeout=10)
    assert answer.status_code == 400
    assert message in answer.json()["message"]
    assert emulator.clock.now() == datetime(2026, 1, 5, 12, 0, tzinfo=UTC)


def test_other_requests_still_reach_moto(emulator, client):
    client("s3").create_bucket(
        Bucket="still-moto", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"}
    )
    assert [b["Name"] for b in client("s3").list_buckets()["Buckets"]] == ["still-moto"]


def test_uninstall_gives_moto_back_and_one_installation_at_a_time(moto_server, client):
    from localcloud.behaviours import install

    behaviours = install(Clock(START))
    with pytest.raises(RuntimeError, match="already installed"):
        install(Clock(START))
    behaviours.uninstall()
    # moto itself does not know the route (it answers 500 for unknown paths)
    assert requests.post(f"{moto_server}/_mlops/clock", json={"tick": True}, timeout=10).status_code != 200
    cw = client("cloudwatch")
    cw.put_metric_alarm(
        AlarmName="plain-moto",
        Namespace="T",
        MetricName="M",
        Statistic="Sum",
        Period=60,
        EvaluationPeriods=1,
        Threshold=1.0,
        ComparisonOperator="GreaterThanThreshold",
    )
    assert (
        cw.describe_alarms(AlarmNames=["plain-moto"])["MetricAlarms"][0]["StateValue"] == "OK"
    )  # moto's own start
    cw.delete_alarms(AlarmNames=["plain-moto"])


def test_control_route_makes_the_clock_follow_wall_time_and_stop(emulator, moto_server):
    started = emulator.clock.now()
    answer = requests.post(f"{moto_server}/_mlops/clock", json={"follow": 600}, timeout=10)
    assert answer.json()["following"] is True
    time.sleep(1.5)
    stopped = requests.post(f"{moto_server}/_mlops/clock", json={"follow": 0}, timeout=10).json()
    assert stopped["following"] is False
    assert emulator.clock.now() > started  # at least a second of wall time, 600 virtual seconds each


def test_an_uninstall_that_fails_part_way_still_gives_moto_back(moto_server):
    # One behaviour failing to stop must not leave the others patched into moto, nor block the
    # next installation in the process (every later test would fail "already installed").
    from moto.sagemaker.responses import SageMakerResponse

    from localcloud.behaviours import install

    original = SageMakerResponse.__dict__.get("update_endpoint")
    behaviours = install(Clock(START))
    assert SageMakerResponse.__dict__.get("update_endpoint") is not original

    def fails() -> None:
        raise ProcessLookupError("a server that had already gone")

    behaviours._patcher.on_restore(fails)
    with pytest.raises(ProcessLookupError):
        behaviours.uninstall()
    assert SageMakerResponse.__dict__.get("update_endpoint") is original
    install(Clock(START)).uninstall()
