"""EngineerFeatures: which rows a run trains on (strategy and window), and a fair split of them."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pytest
import yaml

from model_code.contract import rules, schema, synthetic
from model_code.training import prepare
from model_code.training.train import read_channel

NEWEST = pd.Timestamp("2026-03-31T12:00:00Z")


@pytest.fixture(autouse=True)
def failure_file(tmp_path, monkeypatch) -> Path:
    """Where a processing step's reason goes: its /opt/ml/output/message."""
    monkeypatch.setenv("MLOPS_OPT_ML", str(tmp_path / "opt_ml"))
    return tmp_path / "opt_ml" / "output" / "message"


def daily(n_days: int, *, per_day: int = 10, seed: int = 0) -> pd.DataFrame:
    """``per_day`` customers a day for ``n_days`` days ending at NEWEST, typed by the schema."""
    raw = synthetic.generate(n_days * per_day, seed=seed)
    days = [NEWEST - pd.Timedelta(days=d) for d in range(n_days) for _ in range(per_day)]
    raw["event_time"] = [t.strftime("%Y-%m-%dT%H:%M:%SZ") for t in days]
    return rules.coerce(raw, schema.load())


def tiny(labels: list[int], days_ago: list[int]) -> pd.DataFrame:
    """Just the columns the window and the split look at."""
    return pd.DataFrame(
        {
            "customer_id": [f"C{i:03d}" for i in range(len(labels))],
            "event_time": [NEWEST - pd.Timedelta(days=d) for d in days_ago],
            "churned": labels,
        }
    )


def test_combined_keeps_the_last_window_days_up_to_the_newest_record(churn_schema):
    frame = tiny([0, 1, 0, 1], days_ago=[0, 5, 10, 11])
    window = prepare.choose_window(NEWEST, strategy="combined", window_days=10)
    rows = prepare.select_rows(frame, churn_schema, window)
    # (newest - 10 days, newest]: the record exactly 10 days old is outside.
    assert sorted(rows["customer_id"]) == ["C000", "C001"]


def test_the_window_follows_the_data_not_the_wall_clock(churn_schema):
    old = tiny([0, 1], days_ago=[400, 401])  # a year before NEWEST, long before today either way
    window = prepare.choose_window(old["event_time"].max(), strategy="combined", window_days=30)
    assert len(prepare.select_rows(old, churn_schema, window)) == 2


def test_new_data_only_keeps_records_after_the_champions_data_end(churn_schema):
    frame = tiny([0, 1, 0, 1, 0], days_ago=[0, 1, 2, 3, 200])
    data_end = NEWEST - pd.Timedelta(days=2)
    window = prepare.choose_window(
        NEWEST, strategy="new-data-only", window_days=90, champion_data_end=data_end
    )
    rows = prepare.select_rows(frame, churn_schema, window)
    assert sorted(rows["customer_id"]) == ["C000", "C001"]
    assert "champion's DataEnd" in window.reason


def test_new_data_only_without_a_champion_takes_the_window(churn_schema):
    frame = tiny([0, 1, 0], days_ago=[0, 30, 120])
    window = prepare.choose_window(NEWEST, strategy="new-data-only", window_days=90)
    assert window.since == NEWEST - pd.Timedelta(days=90)
    assert sorted(prepare.select_rows(frame, churn_schema, window)["customer_id"]) == ["C000", "C001"]


def test_combined_ignores_the_champion_and_mixes_old_and_new(churn_schema):
    frame = tiny([0, 1, 0, 1], days_ago=[0, 1, 50, 89])
    window = prepare.choose_window(
        NEWEST, strategy="combined", window_days=90, champion_data_end=NEWEST - pd.Timedelta(days=2)
    )
    assert len(prepare.select_rows(frame, churn_schema, window)) == 4


def test_no_record_newer_than_the_champion_fails_naming_its_data_end(churn_schema):
    frame = tiny([0, 1], days_ago=[3, 4])
    window = prepare.choose_window(
        NEWEST - pd.Timedelta(days=3), strategy="new-data-only", window_days=90, champion_data_end=NEWEST
    )
    with pytest.raises(prepare.PrepareFailed, match="after the champion's DataEnd 2026-03-31T12:00:00Z"):
        prepare.select_rows(frame, churn_schema, window)


def test_unknown_strategy_is_refused_with_the_allowed_ones():
    with pytest.raises(ValueError, match=re.escape("'everything' is not one of new-data-only | combined")):
        prepare.choose_window(NEWEST, strategy="everything", window_days=90)


def test_a_schema_without_event_time_trains_on_every_row(churn_schema):
    window = prepare.choose_window(None, strategy="new-data-only", window_days=1, champion_data_end=NEWEST)
    frame = tiny([0, 1, 0], days_ago=[0, 500, 900]).drop(columns="event_time")
    no_time = schema.parse({k: v for k, v in churn_schema.to_dict().items() if k != "event_time"})
    assert len(prepare.select_rows(frame, no_time, window)) == 3


def test_split_is_stratified(churn_schema):
    rows = tiny([1] * 20 + [0] * 80, days_ago=[0] * 100)
    train, test = prepare.split(rows, churn_schema, test_share=0.2, random_state=0)
    assert (len(train), len(test)) == (80, 20)
    assert train["churned"].mean() == test["churned"].mean() == 0.2
    assert set(train["customer_id"]).isdisjoint(test["customer_id"])


def test_split_is_seeded(churn_schema):
    rows = tiny([1, 0] * 50, days_ago=[0] * 100)
    first = prepare.split(rows, churn_schema, test_share=0.3, random_state=3)[1]
    again = prepare.split(rows, churn_schema, test_share=0.3, random_state=3)[1]
    other = prepare.split(rows, churn_schema, test_share=0.3, random_state=4)[1]
    assert list(first["customer_id"]) == list(again["customer_id"])
    assert list(first["customer_id"]) != list(other["customer_id"])


def test_split_does_not_depend_on_the_order_rows_arrive_in(churn_schema):
    frame = tiny([1, 0] * 50, days_ago=list(range(100)))
    window = prepare.choose_window(NEWEST, strategy="combined", window_days=365)

    def held_out(f: pd.DataFrame) -> list[str]:
        rows = prepare.select_rows(f, churn_schema, window)
        return sorted(prepare.split(rows, churn_schema, test_share=0.2, random_state=0)[1]["customer_id"])

    assert held_out(frame) == held_out(frame.iloc[::-1])


def test_a_single_class_fails_naming_the_target(churn_schema):
    rows = tiny([0] * 200, days_ago=[0] * 200)
    with pytest.raises(prepare.PrepareFailed, match="churned: all 200 rows hold the negative class"):
        prepare.check_trainable(rows, churn_schema, min_rows=100, test_share=0.2)


def test_too_few_rows_fail_with_the_minimum(churn_schema):
    rows = tiny([0, 1] * 10, days_ago=[0] * 20)
    with pytest.raises(prepare.PrepareFailed, match="only 20 rows to train on, fewer than the minimum 100"):
        prepare.check_trainable(rows, churn_schema, min_rows=100, test_share=0.2)


def test_one_row_of_a_class_cannot_be_split(churn_schema):
    rows = tiny([1] + [0] * 30, days_ago=[0] * 31)
    with pytest.raises(prepare.PrepareFailed, match="only 1 positive row"):
        prepare.check_trainable(rows, churn_schema, min_rows=10, test_share=0.2)


def test_report_says_which_rows_were_used(churn_schema):
    frame = daily(120)
    _, _, report = prepare.prepare(frame, churn_schema, strategy="combined", window_days=30, random_state=0)
    assert report["rows"] == 300 and report["rows_in"] == 1200
    assert report["data_end"] == "2026-03-31T12:00:00Z"
    assert report["data_start"] == "2026-03-02T12:00:00Z"
    assert report["rows_train"] + report["rows_test"] == 300


def run(tmp_path: Path, frame: pd.DataFrame, *extra: str) -> int:
    data = tmp_path / "accepted"
    data.mkdir(exist_ok=True)
    prepare.write_csv(frame, data / "accepted.csv")
    return prepare.main(
        [
            "--input",
            str(data),
            "--schema",
            str(schema.EXAMPLE_SCHEMA),
            "--train-dir",
            str(tmp_path / "train"),
            "--test-dir",
            str(tmp_path / "test"),
            "--window-dir",
            str(tmp_path / "window"),
            *extra,
        ]
    )


def test_the_step_writes_both_splits_the_schema_and_the_window(tmp_path, churn_schema):
    assert run(tmp_path, daily(100), "--strategy", "combined", "--window-days", "50") == 0
    report = json.loads((tmp_path / "window" / prepare.WINDOW_FILE).read_text())
    train = read_channel(tmp_path / "train", churn_schema)
    test = read_channel(tmp_path / "test", churn_schema)
    assert len(train) + len(test) == report["rows"] == 500
    # The training channel carries its contract, where model_code.training.train looks for it.
    assert schema.parse(yaml.safe_load((tmp_path / "train" / "schema.yaml").read_text())) == churn_schema
    assert train["event_time"].max() <= pd.Timestamp(report["data_end"])


def test_the_step_takes_the_champions_data_end_when_given(tmp_path):
    code = run(
        tmp_path, daily(100), "--strategy", "new-data-only", "--champion-data-end", "2026-03-21T12:00:00Z"
    )
    report = json.loads((tmp_path / "window" / prepare.WINDOW_FILE).read_text())
    assert code == 0
    assert (report["rows"], report["champion_data_end"], report["champion"]) == (
        100,
        "2026-03-21T12:00:00Z",
        "--champion-data-end",
    )


def test_the_step_fails_with_the_reason_on_one_class(tmp_path, failure_file):
    frame = daily(30)
    frame["churned"] = 0
    assert run(tmp_path, frame, "--strategy", "combined") == 1
    assert "a model needs both classes" in failure_file.read_text()


def test_the_step_fails_on_a_data_end_that_is_not_a_time(tmp_path, failure_file):
    assert run(tmp_path, daily(30), "--champion-data-end", "last tuesday") == 1
    assert "--champion-data-end: 'last tuesday' is not an ISO-8601 time" in failure_file.read_text()


def test_new_data_only_reads_the_champions_data_end_from_the_registry(tmp_path, monkeypatch):
    import boto3
    from moto import mock_aws

    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws():
        client = boto3.client("sagemaker")
        client.create_model_package_group(ModelPackageGroupName="customer-churn")
        arn = client.create_model_package(
            ModelPackageGroupName="customer-churn",
            ModelApprovalStatus="Approved",
            InferenceSpecification={
                "Containers": [{"Image": "000000000000.dkr.ecr.eu-west-1.amazonaws.com/mlops:1"}],
                "SupportedContentTypes": ["application/json"],
                "SupportedResponseMIMETypes": ["application/json"],
            },
            CustomerMetadataProperties={"DataEnd": "2026-03-21T12:00:00Z"},
        )["ModelPackageArn"]
        code = run(
            tmp_path, daily(100), "--strategy", "new-data-only", "--model-package-group", "customer-churn"
        )
    report = json.loads((tmp_path / "window" / prepare.WINDOW_FILE).read_text())
    assert code == 0
    assert (report["rows"], report["since"], report["champion"]) == (100, "2026-03-21T12:00:00Z", arn)


def test_combined_never_asks_the_registry(tmp_path, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("combined looked the champion up")

    monkeypatch.setattr(prepare.register_info, "latest_approved", refuse)
    assert run(tmp_path, daily(30), "--strategy", "combined", "--model-package-group", "customer-churn") == 0
