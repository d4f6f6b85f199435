"""The model server over real HTTP on 127.0.0.1: SageMaker's /ping and /invocations contract.

The server is ``mlops serve`` in its own process (model_code.serving.process), as in the image.
"""

from __future__ import annotations

import http.client
import io
import json
import logging
import os
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from wsgiref.util import setup_testing_defaults

import pytest

from model_code.serving import app, inference, serve
from model_code.serving.process import ServerProcess
from tests.model_code.serving import stand_ins

VALID = {
    "tenure_months": 12,
    "monthly_charges": 70.5,
    "total_charges": 846.0,
    "contract": "month-to-month",
    "internet_service": "fiber",
    "payment_method": "electronic-check",
    "support_calls": 2,
    "senior_citizen": 0,
}
JSON_HEADERS = {"Content-Type": "application/json"}


@pytest.fixture(scope="module")
def server(spawn, model_dir):
    return spawn(model_dir, workers=2)


def call(srv, method, path, body=None, headers=None):
    """(status, headers, body) of one request; 4xx and 5xx are answers, not exceptions."""
    request = urllib.request.Request(f"{srv.url}{path}", data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers, exc.read()


def invoke(srv, payload, headers=JSON_HEADERS):
    return call(srv, "POST", "/invocations", json.dumps(payload).encode(), headers)


def test_ping_answers_200(server):
    status, _, _ = call(server, "GET", "/ping")
    assert status == 200


def test_invocations_answers_predictions(server):
    status, headers, body = invoke(server, {"instances": [VALID, VALID]})
    assert status == 200
    assert headers["Content-Type"] == "application/json"
    predictions = json.loads(body)["predictions"]
    assert len(predictions) == 2
    assert all(0.0 <= p["probability"] <= 1.0 and p["prediction"] in (0, 1) for p in predictions)


def test_invocations_answers_csv_when_asked(server):
    csv_row = ",".join(map(str, VALID.values())).encode()
    status, headers, body = call(
        server, "POST", "/invocations", csv_row, {"Content-Type": "text/csv", "Accept": "text/csv"}
    )
    assert status == 200
    assert headers["Content-Type"] == "text/csv"
    probability, label = body.decode().strip().split(",")
    assert 0.0 <= float(probability) <= 1.0 and label in ("0", "1")


def test_contract_violation_is_400_naming_the_field(server):
    status, headers, body = invoke(server, {**VALID, "tenure_months": 999})
    assert status == 400
    assert headers["Content-Type"] == "application/json"
    assert json.loads(body)["error"].startswith("tenure_months: 999 is above the maximum 120")


def test_unsupported_content_type_is_415(server):
    status, _, body = call(server, "POST", "/invocations", b"<x/>", {"Content-Type": "application/xml"})
    assert status == 415
    assert "application/xml" in json.loads(body)["error"]


def test_unsupported_accept_is_406(server):
    status, _, _ = invoke(server, VALID, {**JSON_HEADERS, "Accept": "image/png"})
    assert status == 406


def test_unknown_path_is_404(server):
    status, _, body = call(server, "GET", "/predict")
    assert status == 404
    assert "/predict" in json.loads(body)["error"]


def test_wrong_method_is_405_with_allow(server):
    status, headers, _ = call(server, "GET", "/invocations")
    assert status == 405
    assert headers["Allow"] == "POST"


def _send_oversized(srv, chunked: bool) -> tuple[int, dict]:
    """POST a 7 MB body in full, framed by Content-Length or chunked; the status and JSON answer."""
    body = b"[" + b"0," * (7 * 1024 * 1024 // 2) + b"0]"
    connection = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=30)
    try:
        if chunked:
            pieces = (body[i : i + 65536] for i in range(0, len(body), 65536))
            connection.request("POST", "/invocations", pieces, JSON_HEADERS, encode_chunked=True)
        else:
            connection.request("POST", "/invocations", body, JSON_HEADERS)
        response = connection.getresponse()
        return response.status, json.loads(response.read())
    finally:
        connection.close()


def test_body_over_the_payload_limit_with_content_length_is_a_json_413(server):
    status, answer = _send_oversized(server, chunked=False)
    assert status == 413
    assert answer["error"] == f"request body: larger than {app.MAX_PAYLOAD_BYTES} bytes"


def test_chunked_body_over_the_payload_limit_is_a_json_413(server):
    status, answer = _send_oversized(server, chunked=True)
    assert status == 413
    assert "larger than" in answer["error"]


def test_concurrent_requests_all_succeed(server):
    with ThreadPoolExecutor(16) as pool:
        results = list(pool.map(lambda i: invoke(server, {**VALID, "support_calls": i}), range(16)))
    assert [status for status, _, _ in results] == [200] * 16


def test_each_worker_holds_its_math_libraries_to_one_thread(spawn, stand_in_dir, monkeypatch):
    # As on a machine where nobody set them: the server itself must.
    for name in serve.MATH_THREAD_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    srv = spawn(stand_in_dir(stand_ins.ThreadReporter()), workers=1)
    status, _, body = invoke(srv, VALID)
    assert status == 200
    assert json.loads(body)["predictions"][0]["probability"] == pytest.approx(0.01)


def _wsgi(application, payload: bytes):
    environ = {"REQUEST_METHOD": "POST", "PATH_INFO": "/invocations", "CONTENT_TYPE": inference.JSON}
    setup_testing_defaults(environ)
    environ.update({"wsgi.input": io.BytesIO(payload), "CONTENT_LENGTH": str(len(payload))})
    seen = {}
    body = b"".join(application(environ, lambda status, headers: seen.update(status=status)))
    return seen["status"], json.loads(body)


def test_unexpected_error_is_a_generic_500_logged_with_its_cause(model_dir, caplog):
    broken = inference.model_fn(model_dir)
    broken.pipeline = stand_ins.Broken()
    with caplog.at_level(logging.ERROR, logger="model_code.serving.app"):
        status, answer = _wsgi(app.InferenceApp(broken), json.dumps(VALID).encode())
    assert status.startswith("500")
    assert "secret" not in answer["error"]
    assert "secret internals" in caplog.text


def test_stop_exits_0_and_stops_listening(model_dir):
    with ServerProcess(model_dir, workers=1) as srv:
        srv.start()
        assert srv.ping() == 200
        assert srv.stop() == 0
        assert srv.ping(timeout=1) is None


def test_main_fails_loudly_without_a_model(tmp_path, caplog, monkeypatch):
    for name in serve.MATH_THREAD_VARIABLES:  # main() sets them; monkeypatch restores them
        monkeypatch.setenv(name, "1")
    assert serve.main(["--model-dir", str(tmp_path), "--port", "0", "--host", "127.0.0.1"]) == 1
    assert str(tmp_path) in caplog.text


def test_a_bad_worker_count_in_the_environment_is_refused_by_name(monkeypatch, capsys):
    monkeypatch.setenv(serve.WORKERS_VARIABLE, "many")
    with pytest.raises(SystemExit):
        serve.parse_args([])
    assert (
        "$SAGEMAKER_MODEL_SERVER_WORKERS: expected a positive integer, got 'many'" in capsys.readouterr().err
    )


def test_workers_default_to_sagemakers_variable(monkeypatch):
    monkeypatch.setenv(serve.WORKERS_VARIABLE, "3")
    assert serve.parse_args([]).workers == 3


def test_math_libraries_default_to_one_thread(monkeypatch):
    for name in serve.MATH_THREAD_VARIABLES:
        monkeypatch.setenv(name, "unset")  # so monkeypatch restores the original afterwards
        monkeypatch.delenv(name)
    serve.hold_math_libraries_to_one_thread()
    assert {name: os.environ[name] for name in serve.MATH_THREAD_VARIABLES} == dict.fromkeys(
        serve.MATH_THREAD_VARIABLES, "1"
    )


def test_an_explicit_openmp_thread_count_is_kept(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "4")
    serve.hold_math_libraries_to_one_thread()
    assert os.environ["OMP_NUM_THREADS"] == "4"


def test_the_server_runs_the_requested_worker_processes(server):
    master = server.process.pid
    workers = Path(f"/proc/{master}/task/{master}/children").read_text().split()
    assert len(workers) == 2


def test_workers_default_to_one_per_core(monkeypatch):
    monkeypatch.delenv(serve.WORKERS_VARIABLE, raising=False)
    assert serve.parse_args([]).workers == os.cpu_count()
