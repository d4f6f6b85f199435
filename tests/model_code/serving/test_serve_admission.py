"""A worker's bounded queue (model_code.serving.app.Admission), in-process with threads."""

from __future__ import annotations

import threading
import time

import pytest

from model_code.serving.app import Admission, Overloaded


def _hold(admission: Admission, release: threading.Event, order: list[int], i: int) -> None:
    with admission.enter():
        order.append(i)
        release.wait(10)


def _wait_inside(admission: Admission, n: int) -> None:
    deadline = time.monotonic() + 10
    while admission.inside < n:
        assert time.monotonic() < deadline, f"only {admission.inside} of {n} requests got in"
        time.sleep(0.001)


def test_one_more_than_depth_plus_one_is_refused_at_once():
    admission, release, order = Admission(depth=2), threading.Event(), []
    threads = [threading.Thread(target=_hold, args=(admission, release, order, i)) for i in range(3)]
    for thread in threads:
        thread.start()
    _wait_inside(admission, 3)
    with pytest.raises(Overloaded), admission.enter():
        pass
    release.set()
    for thread in threads:
        thread.join(10)
    assert admission.inside == 0


def test_waiting_requests_are_served_in_arrival_order():
    admission, release, order = Admission(depth=8), threading.Event(), []
    threads = []
    for i in range(6):
        thread = threading.Thread(target=_hold, args=(admission, release, order, i))
        thread.start()
        threads.append(thread)
        _wait_inside(admission, i + 1)  # request i is queued before i + 1 arrives
    release.set()
    for thread in threads:
        thread.join(10)
    assert order == list(range(6))


def test_only_one_request_is_inside_the_model_at_a_time():
    admission, busy, overlaps = Admission(depth=8), [0], []

    def predict():
        with admission.enter():
            busy[0] += 1
            overlaps.append(busy[0])
            time.sleep(0.005)
            busy[0] -= 1

    threads = [threading.Thread(target=predict) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert overlaps == [1] * 8


def test_a_negative_depth_is_refused_by_name():
    with pytest.raises(ValueError, match="queue depth: expected 0 or more, got -1"):
        Admission(-1)
