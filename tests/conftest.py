"""Shared fixtures: the example schema, seeded churn data and one trained model folder."""

from __future__ import annotations

import os

# sagemaker 3.x needs a region at import; tests never reach AWS.
os.environ.setdefault("AWS_DEFAULT_REGION", "eu-west-1")
# Some tests replace the pipeline builders with fakes: a definition cache on disk would keep
# what a fake built for the next real deploy (tests that check the cache give it a folder).
os.environ.setdefault("MLOPS_DEFINITION_CACHE", "off")

import pandas as pd
import pytest

from model_code.contract import schema, synthetic, table
from model_code.training import artifact
from model_code.training.train import fit_model

WHOLE_MODULES = "MLOPS_MUTATION_WHOLE_MODULES"  # set by .ci/mutation.py for such a group


@pytest.fixture(scope="session")
def churn_schema() -> schema.Schema:
    return schema.load(schema.EXAMPLE_SCHEMA)


@pytest.fixture(scope="session")
def churn_csv(tmp_path_factory) -> str:
    """4,000 clean customers as a CSV file, seed 7."""
    path = tmp_path_factory.mktemp("data") / "churn.csv"
    synthetic.generate(4000, seed=7).to_csv(path, index=False)
    return str(path)


@pytest.fixture(scope="session")
def churn_frame(churn_csv, churn_schema) -> pd.DataFrame:
    return table.read_csv(churn_csv, churn_schema)


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory, churn_frame, churn_schema) -> str:
    """A trained model artifact folder (model.joblib, schema.yaml, features.json, metadata.json)."""
    bundle = fit_model(churn_frame, churn_schema, model_params={"n_estimators": 60}, random_state=0)
    return str(artifact.save(tmp_path_factory.mktemp("model"), bundle))


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    """Tests never reach the network: any connection off the loopback fails loudly."""
    import ipaddress
    import socket

    connect = socket.socket.connect

    def guarded(sock, address):
        host = address[0] if isinstance(address, tuple) else None
        if host is not None:
            try:
                loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
            except ValueError:
                loopback = False
            if not loopback:
                raise ConnectionRefusedError(f"test tried to reach {address}: tests stay on 127.0.0.1")
        return connect(sock, address)

    monkeypatch.setattr(socket.socket, "connect", guarded)


def pytest_configure(config):
    """Under mutmut, a group marked ``whole_modules`` runs every test of each module a mutant's
    tests are in. mutmut gives a function to the tests that reached it, and a function reached
    while a module fixture set up (a stack deployed) goes to the module's first test alone, so
    a mutant there would be tried against that one test instead of all those reading its work."""
    if "__mutmut_" in os.environ.get("MUTANT_UNDER_TEST", "") and os.environ.get(WHOLE_MODULES):
        config.args = sorted({arg.split("::")[0] for arg in config.args})


def pytest_collection_modifyitems(config, items):
    """Under mutmut (``make mutation``) a mutant's tests arrive in no particular order: run them
    module by module (each module's order kept), so a module's emulator starts once, not at every
    switch between modules."""
    if "MUTANT_UNDER_TEST" in os.environ:
        items.sort(key=lambda item: str(item.path))
