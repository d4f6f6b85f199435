"""The model server under load: SIGTERM loses nothing, a full queue is answered, /ping stays up.

Each test runs ``mlops serve`` on a stand-in model whose prediction takes a known time
(tests/model_code/serving/stand_ins.py), so a queue can be filled on purpose. Nothing is
timed against a budget except where the behaviour is "at once": a 503 must arrive before
the prediction it would have waited for could have finished.
"""

from __future__ import annotations

import http.client
import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.model_code.serving import stand_ins
from tests.model_code.serving.test_serve import JSON_HEADERS, VALID

BODY = json.dumps(VALID).encode()


def _post(srv, sent: threading.Semaphore | None = None) -> tuple[int, dict, dict, float]:
    """POST one record: (status, headers, JSON answer, seconds); releases ``sent`` once it is on the wire."""
    start = time.monotonic()
    connection = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=60)
    try:
        connection.request("POST", "/invocations", BODY, JSON_HEADERS)
        if sent is not None:
            sent.release()
        response = connection.getresponse()
        answer = json.loads(response.read())
        return response.status, dict(response.getheaders()), answer, time.monotonic() - start
    finally:
        connection.close()


def _in_flight(srv, n: int) -> tuple[ThreadPoolExecutor, list]:
    """Send ``n`` requests at once; return once every one is on the wire (their futures still open)."""
    sent = threading.Semaphore(0)
    pool = ThreadPoolExecutor(n)
    futures = [pool.submit(_post, srv, sent) for _ in range(n)]
    for _ in range(n):
        assert sent.acquire(timeout=30), "a request could not be sent"
    return pool, futures


def _wait_for(predicate, timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def test_sigterm_answers_every_request_in_flight_then_exits_0(spawn, stand_in_dir):
    srv = spawn(stand_in_dir(stand_ins.SlowPipeline(0.2)), workers=2, queue_depth=16)
    pool, futures = _in_flight(srv, 12)
    with pool:
        exit_status = srv.stop()
        statuses = [future.result()[0] for future in futures]
    assert statuses == [200] * 12
    assert exit_status == 0


def test_sigterm_gives_up_after_the_graceful_timeout_and_still_exits_0(spawn, stand_in_dir):
    srv = spawn(stand_in_dir(stand_ins.SlowPipeline(60)), workers=1, graceful_timeout=1)
    pool, _ = _in_flight(srv, 1)
    with pool:
        start = time.monotonic()
        exit_status = srv.stop(timeout=30)
        waited = time.monotonic() - start
        pool.shutdown(wait=False, cancel_futures=True)
    assert exit_status == 0
    assert waited < 30  # the 60 s prediction was abandoned at the 1 s deadline


@pytest.fixture(scope="module")
def busy(spawn, stand_in_dir, tmp_path_factory):
    """One worker, queue depth 2, predictions of 2.5 s that are recorded in a calls file."""
    calls = tmp_path_factory.mktemp("calls") / "calls.txt"
    calls.write_text("")
    srv = spawn(
        stand_in_dir(stand_ins.SlowPipeline(2.5)),
        workers=1,
        queue_depth=2,
        env={stand_ins.CALLS_VARIABLE: str(calls)},
    )
    return srv, calls


def test_a_full_queue_is_answered_at_once_with_503_and_retry_after(busy):
    srv, _ = busy
    pool, futures = _in_flight(srv, 6)
    with pool:
        results = [future.result() for future in futures]
    statuses = sorted(status for status, *_ in results)
    assert statuses == [200] * 3 + [503] * 3  # one predicting, two waiting, the rest refused
    for status, headers, answer, seconds in results:
        if status == 503:
            assert headers["Retry-After"] == "1"
            assert answer["error"].startswith("server busy")
            assert seconds < 2.5  # not queued: answered before the first prediction ended


def test_ping_answers_while_the_queue_is_full(busy):
    srv, calls = busy
    before = calls.read_text().count("call")
    pool, futures = _in_flight(srv, 3)
    with pool:
        # One prediction running, two waiting: the worker's queue is full.
        assert _wait_for(lambda: calls.read_text().count("call") == before + 1)
        pings = [srv.ping(timeout=2.0) for _ in range(5)]  # SageMaker waits 2 s for a ping
        assert [f.result()[0] for f in futures] == [200] * 3
    assert pings == [200] * 5


def test_work_whose_client_has_gone_is_dropped(busy):
    srv, calls = busy
    before = calls.read_text().count("call")
    with ThreadPoolExecutor(1) as pool:
        first = pool.submit(_post, srv)
        assert _wait_for(lambda: calls.read_text().count("call") == before + 1)
        for _ in range(2):  # queued behind the first, then given up by their clients
            connection = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=10)
            connection.request("POST", "/invocations", BODY, JSON_HEADERS)
            connection.close()
        assert first.result()[0] == 200
    assert _wait_for(lambda: srv.log().count("request dropped") >= 2)
    assert calls.read_text().count("call") == before + 1


def test_a_server_told_to_exit_with_its_parent_shuts_down_when_the_parent_is_killed(model_dir):
    """The local cloud's servers never outlive it, even when it is killed (SIGKILL runs no cleanup)."""
    import os
    import signal
    import subprocess
    import sys

    import psutil

    from model_code.serving.serve import EXIT_WITH_PARENT_VARIABLE

    parent = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\n"
            "from model_code.serving.process import ServerProcess\n"
            f"s = ServerProcess(sys.argv[1], workers=1, env={{'{EXIT_WITH_PARENT_VARIABLE}': '1'}}).start()\n"
            "print(s.process.pid, s.port, flush=True)\n"
            "time.sleep(600)\n",
            model_dir,
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    pid, port = map(int, parent.stdout.readline().split())
    server = psutil.Process(pid)
    try:
        assert server.is_running()
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait(10)
        # Reparented, it notices within its poll and drains like any SIGTERM: gone, port closed.
        server.wait(timeout=30)
        with pytest.raises(OSError):
            http.client.HTTPConnection("127.0.0.1", port, timeout=2).request("GET", "/ping")
    finally:
        if parent.poll() is None:
            parent.kill()
        if server.is_running():  # the failure this test is for: end the orphan and its workers
            os.killpg(pid, signal.SIGKILL)
