"""The model server over real HTTP on 127.0.0.1: SageMaker's /ping and /invocations contract."""

from __future__ import annotations

import dataclasses
import http.client
import json
import logging
import threading
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from model_code.serving import inference, serve

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
def model(model_dir):
    return inference.model_fn(model_dir)


@pytest.fixture(scope="module")
def server(model):
    srv = serve.ModelServer(model, "127.0.0.1", 0, threads=4)
    try:
        yield srv.start()
    finally:
        srv.close()


def call(srv, method, path, body=None, headers=None):
    """(status, headers, body) of one request; 4xx and 5xx are answers, not exceptions."""
    request = urllib.request.Request(
        f"http://127.0.0.1:{srv.port}{path}", data=body, method=method, headers=headers or {}
    )
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


def test_body_over_the_payload_limit_is_413(server):
    # Headers only: the server refuses on the declared length without reading the body.
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        connection.putrequest("POST", "/invocations")
        connection.putheader("Content-Type", "application/json")
        connection.putheader("Content-Length", str(serve.MAX_PAYLOAD_BYTES + 1))
        connection.endheaders()
        assert connection.getresponse().status == 413
    finally:
        connection.close()


def test_concurrent_requests_all_succeed(server):
    with ThreadPoolExecutor(16) as pool:
        results = list(pool.map(lambda i: invoke(server, {**VALID, "support_calls": i}), range(16)))
    assert [status for status, _, _ in results] == [200] * 16


class _Rendezvous:
    """A stand-in pipeline that predicts only once ``parties`` requests are inside it at once."""

    classes_ = np.array([0, 1])

    def __init__(self, parties):
        self.barrier = threading.Barrier(parties, timeout=10)

    def predict_proba(self, data):
        self.barrier.wait()
        return np.tile([0.5, 0.5], (len(data), 1))


def test_requests_are_served_in_parallel(model):
    stand_in = dataclasses.replace(model, pipeline=_Rendezvous(4))
    with serve.ModelServer(stand_in, "127.0.0.1", 0, threads=4).start() as srv, ThreadPoolExecutor(4) as pool:
        statuses = list(pool.map(lambda _: invoke(srv, VALID)[0], range(4)))
    assert statuses == [200] * 4


class _Broken:
    classes_ = np.array([0, 1])

    def predict_proba(self, data):
        raise RuntimeError("secret internals")


def test_unexpected_error_is_a_generic_500_and_the_server_keeps_running(model, caplog):
    with serve.ModelServer(
        dataclasses.replace(model, pipeline=_Broken()), "127.0.0.1", 0, threads=2
    ).start() as srv:
        with caplog.at_level(logging.ERROR, logger="model_code.serving.serve"):
            status, _, body = invoke(srv, VALID)
        assert status == 500
        assert "secret" not in json.loads(body)["error"]
        assert "secret internals" in caplog.text
        assert call(srv, "GET", "/ping")[0] == 200


def test_close_stops_listening(model):
    srv = serve.ModelServer(model, "127.0.0.1", 0, threads=2).start()
    assert call(srv, "GET", "/ping")[0] == 200
    srv.close()
    with pytest.raises(urllib.error.URLError):
        call(srv, "GET", "/ping")


def test_create_server_loads_the_model_dir(model_dir):
    with serve.create_server(model_dir, "127.0.0.1", 0, threads=2).start() as srv:
        assert srv.port > 0
        assert invoke(srv, VALID)[0] == 200


def test_main_fails_loudly_without_a_model(tmp_path, caplog):
    assert serve.main(["--model-dir", str(tmp_path), "--port", "0", "--host", "127.0.0.1"]) == 1
    assert str(tmp_path) in caplog.text
