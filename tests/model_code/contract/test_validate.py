"""ValidateData: the suite comes from the schema; bad rows are quarantined with a reason, none lost."""

from __future__ import annotations

import json
import time

import pandas as pd
import pytest
import yaml

from mlops import cli
from model_code.contract import schema, synthetic, table
from model_code.contract.validate import ValidationFailed, build_suite, main, validate


@pytest.fixture(autouse=True)
def failure_file(tmp_path, monkeypatch):
    """Where a processing step's reason goes: its /opt/ml/output/message (the ExitMessage)."""
    monkeypatch.setenv("MLOPS_OPT_ML", str(tmp_path / "opt_ml"))
    return tmp_path / "opt_ml" / "output" / "message"


def read(raw: pd.DataFrame, directory, churn_schema) -> pd.DataFrame:
    """What the step makes of ``raw``: written as CSV, read back as its text cells."""
    path = directory / "in.csv"
    raw.to_csv(path, index=False)
    return table.read_csv_lines(path).records


@pytest.fixture
def raw() -> pd.DataFrame:
    """Twenty clean customers with every cell editable (object columns)."""
    return synthetic.generate(20, seed=1).astype(object)


@pytest.fixture(scope="module")
def dirty(tmp_path_factory, churn_schema):
    """2,000 customers, 10% of them breaking the contract: the raw frame and its validation."""
    raw = synthetic.generate(2000, seed=3, dirty=0.1)
    frame = read(raw, tmp_path_factory.mktemp("dirty"), churn_schema)
    return raw, validate(frame, churn_schema)


def test_clean_data_is_all_accepted(churn_frame, churn_schema):
    result = validate(churn_frame, churn_schema)
    assert (result.rows_in, result.rows_accepted, result.rows_quarantined) == (4000, 4000, 0)
    assert result.table_errors == []
    result.check()


@pytest.mark.parametrize(
    ("planted", "reason", "counted_as"),
    [
        (
            lambda raw: raw.monthly_charges.astype(str) == " ",
            "monthly_charges: no value (null or empty), but it is not nullable",
            "monthly_charges: no value (null or empty), but it is not nullable",
        ),
        (
            lambda raw: raw.tenure_months.astype(str) == "999",
            "tenure_months: 999 is above the maximum 120",
            "tenure_months: above the maximum 120",
        ),
        (
            lambda raw: raw.contract == "lifetime",
            "contract: 'lifetime' is not one of month-to-month | one-year | two-year",
            "contract: not one of month-to-month | one-year | two-year",
        ),
        (
            lambda raw: raw.monthly_charges.astype(str) == "-5.0",
            "monthly_charges: -5.0 is below the minimum 0",
            "monthly_charges: below the minimum 0",
        ),
    ],
    ids=["blank-number", "above-max", "unknown-category", "below-min"],
)
def test_each_planted_violation_is_quarantined_with_its_reason(dirty, planted, reason, counted_as):
    raw, result = dirty
    planted_ids = set(raw.customer_id[planted(raw)])
    assert len(planted_ids) == 50
    quarantined = result.quarantined.set_index("customer_id").reason
    assert set(quarantined[quarantined == reason].index) == planted_ids
    assert result.reasons[counted_as] == 50


def test_every_row_is_accepted_or_quarantined(dirty):
    raw, result = dirty
    assert result.rows_in == len(raw) == result.rows_accepted + result.rows_quarantined
    assert result.rows_quarantined == 200
    ids = [*result.accepted.customer_id, *result.quarantined.customer_id]
    assert sorted(ids) == sorted(raw.customer_id)


def test_blank_in_a_fractional_column_is_quarantined_not_a_crash(raw, tmp_path, churn_schema):
    raw.loc[3, "total_charges"] = " "  # nullable: a blank is allowed
    raw.loc[4, "monthly_charges"] = " "
    result = validate(read(raw, tmp_path, churn_schema), churn_schema)
    assert result.quarantined.customer_id.tolist() == [raw.customer_id[4]]
    assert result.quarantined.reason.tolist() == [
        "monthly_charges: no value (null or empty), but it is not nullable"
    ]


def test_a_row_breaking_two_rules_names_both_in_schema_order(raw, tmp_path, churn_schema):
    raw.loc[0, ["monthly_charges", "tenure_months"]] = [" ", 999]
    result = validate(read(raw, tmp_path, churn_schema), churn_schema)
    assert result.quarantined.reason.tolist() == [
        "tenure_months: 999 is above the maximum 120; "
        "monthly_charges: no value (null or empty), but it is not nullable"
    ]


def test_duplicate_ids_keep_the_first_and_quarantine_the_others(raw, tmp_path, churn_schema):
    raw.loc[[5, 9], "customer_id"] = raw.customer_id[2]
    result = validate(read(raw, tmp_path, churn_schema), churn_schema)
    assert raw.customer_id[2] in set(result.accepted.customer_id)
    assert result.quarantined.index.tolist() == [5, 9]
    assert set(result.quarantined.reason) == {
        f"customer_id: {raw.customer_id[2]!r} is a duplicate id (the first row with it is kept)"
    }
    assert result.reasons == {"customer_id: duplicate id (the first row with it is kept)": 2}
    assert result.rows_accepted + result.rows_quarantined == 20


def test_unparseable_event_time_is_quarantined(raw, tmp_path, churn_schema):
    raw.loc[7, "event_time"] = "yesterday"
    result = validate(read(raw, tmp_path, churn_schema), churn_schema)
    assert result.quarantined.reason.tolist() == ["event_time: 'yesterday' is not an ISO-8601 time"]


def test_absent_event_time_column_is_not_a_failure(raw, tmp_path, churn_schema):
    result = validate(read(raw.drop(columns="event_time"), tmp_path, churn_schema), churn_schema)
    assert result.table_errors == []
    assert result.rows_accepted == 20


def test_missing_column_is_a_table_error_naming_it(raw, tmp_path, churn_schema):
    result = validate(read(raw.drop(columns="contract"), tmp_path, churn_schema), churn_schema)
    assert result.table_errors == ["contract: missing column"]
    assert result.rows_quarantined == 0  # no row is to blame
    with pytest.raises(ValidationFailed, match="contract: missing column"):
        result.check()


def test_a_column_of_which_no_value_parses_is_a_table_error(raw, tmp_path, churn_schema):
    raw["total_charges"] = "n/a"  # nullable, so every row used to pass with a null
    result = validate(read(raw, tmp_path, churn_schema), churn_schema)
    assert result.table_errors == [
        "total_charges: none of its 20 values is a finite number (e.g. 'n/a'); "
        "is it the right column, of the right type?"
    ]
    assert result.reasons == {"total_charges: not a number": 20}
    with pytest.raises(ValidationFailed, match="total_charges: none of its 20 values"):
        result.check(max_quarantine_share=1.0)


def test_a_third_label_is_quarantined_naming_the_two_classes(raw, tmp_path, churn_schema):
    raw.loc[0, "churned"] = 2
    raw.loc[1, "churned"] = "yes"
    result = validate(read(raw, tmp_path, churn_schema), churn_schema)
    assert result.table_errors == []
    assert result.quarantined.reason.tolist() == [
        "churned: 2 is not one of 0 | 1",
        "churned: 'yes' is not one of 0 | 1",
    ]


def test_quarantine_share_over_threshold_fails_naming_share_and_threshold(dirty):
    _, result = dirty
    with pytest.raises(ValidationFailed) as failed:
        result.check(max_quarantine_share=0.05)
    message = str(failed.value)
    assert "quarantined 10.0% of rows (200 of 2000), above the allowed 5.0%" in message
    assert "(50)" in message  # the top reasons come with their counts


def test_quarantine_share_under_threshold_passes(dirty):
    _, result = dirty
    result.check(max_quarantine_share=0.2)


def test_empty_input_fails(raw, tmp_path, churn_schema):
    result = validate(read(raw.iloc[:0], tmp_path, churn_schema), churn_schema)
    assert result.rows_in == 0
    with pytest.raises(ValidationFailed, match="the input is empty"):
        result.check()


def _expectations(s: schema.Schema) -> set[tuple]:
    return {
        (e.expectation_type, e.column, getattr(e, "min_value", None), getattr(e, "max_value", None))
        for e in build_suite(s).expectations
    }


def test_suite_follows_a_feature_added_to_the_schema(churn_schema):
    raw_schema = yaml.safe_load(schema.EXAMPLE_SCHEMA.read_text())
    raw_schema["features"].append({"name": "discount", "type": "fractional", "min": 0, "max": 0.5})
    added = _expectations(schema.parse(raw_schema)) - _expectations(churn_schema)
    assert added == {
        ("expect_column_to_exist", "discount", None, None),
        ("expect_column_values_to_be_of_type", "discount", None, None),
        ("expect_column_values_to_not_be_null", "discount", None, None),
        ("expect_column_values_to_be_between", "discount", 0, 0.5),
    }


def test_suite_checks_every_schema_column_exists(churn_schema):
    checked = {column for kind, column, *_ in _expectations(churn_schema) if kind == "expect_column_to_exist"}
    assert checked == set(churn_schema.columns)


def test_nullable_feature_may_be_null(churn_schema):
    not_null = {
        c for kind, c, *_ in _expectations(churn_schema) if kind == "expect_column_values_to_not_be_null"
    }
    assert "total_charges" not in not_null
    assert {"customer_id", "monthly_charges", "churned"} <= not_null


# --- the container step ---------------------------------------------------------------------


def run(tmp_path, *extra: str) -> tuple[int, dict, pd.DataFrame, pd.DataFrame]:
    """Run ``main`` with outputs under ``tmp_path/out``; return the exit code and outputs."""
    out = tmp_path / "out"
    code = main(
        [
            *("--accepted-dir", str(out / "accepted")),
            *("--quarantine-dir", str(out / "quarantine")),
            *("--report-dir", str(out / "report")),
            *extra,
        ]
    )
    report = json.loads((out / "report" / "validation.json").read_text())
    accepted = pd.read_csv(out / "accepted" / "accepted.csv", dtype=str)
    quarantined = pd.read_csv(out / "quarantine" / "quarantine.csv", dtype=str)
    return code, report, accepted, quarantined


def test_main_writes_accepted_quarantine_and_report_from_several_files(tmp_path, failure_file):
    data = tmp_path / "in"
    data.mkdir()
    frame = synthetic.generate(600, seed=5, dirty=0.02)
    frame.iloc[:400].to_csv(data / "part-1.csv", index=False)
    frame.iloc[400:].to_csv(data / "part-2.csv", index=False)

    code, report, accepted, quarantined = run(tmp_path, "--input", str(data))

    assert code == 0
    assert not failure_file.exists()
    assert (report["rows_in"], report["rows_accepted"], report["rows_quarantined"]) == (600, 588, 12)
    assert (len(accepted), len(quarantined)) == (588, 12)
    assert sum(report["reasons"].values()) == 12
    assert quarantined.reason.notna().all()
    assert report["table_errors"] == [] and report["passed"] is True


def test_main_failure_writes_the_reason_and_still_writes_outputs(tmp_path, failure_file):
    path = tmp_path / "dirty.csv"
    synthetic.generate(400, seed=5, dirty=0.2).to_csv(path, index=False)

    code, report, accepted, quarantined = run(tmp_path, "--input", str(path))

    assert code == 1
    assert "quarantined 20.0% of rows (80 of 400), above the allowed 5.0%" in failure_file.read_text()
    assert report["passed"] is False and report["failure"] == failure_file.read_text()
    assert len(accepted) + len(quarantined) == 400


@pytest.mark.parametrize(
    "given", ["2026-03-01T12:00:00Z", "2026-03-01T12:00:00", "2026-03-01T13:00:00+01:00"]
)
def test_main_uses_ingestion_time_in_utc_when_data_has_no_event_time(tmp_path, given):
    path = tmp_path / "no-time.csv"
    synthetic.generate(50, seed=2).drop(columns="event_time").assign(note="x").to_csv(path, index=False)

    code, report, accepted, _ = run(tmp_path, "--input", str(path), "--ingestion-time", given)

    assert code == 0
    assert set(accepted.event_time) == {"2026-03-01T12:00:00Z"}
    assert report["ignored_columns"] == ["note"]


def test_accepted_output_is_valid_input(tmp_path, churn_csv, churn_schema):
    run(tmp_path, "--input", churn_csv)
    again = table.read_csv(tmp_path / "out" / "accepted" / "accepted.csv", churn_schema)
    result = validate(again, churn_schema)
    assert result.rows_accepted == 4000 and result.table_errors == []


def test_main_reads_the_schema_from_a_folder(tmp_path, churn_csv):
    folder = tmp_path / "schema"
    folder.mkdir()
    (folder / "contract.yaml").write_text(schema.EXAMPLE_SCHEMA.read_text())
    code, report, *_ = run(tmp_path, "--input", churn_csv, "--schema", str(folder))
    assert code == 0 and report["schema"] == "customer-churn"


def test_main_without_input_files_fails_naming_the_folder(tmp_path, failure_file):
    empty = tmp_path / "nothing"
    empty.mkdir()
    assert main(["--input", str(empty)]) == 1
    assert failure_file.read_text() == f"{empty}: no CSV or Parquet files to validate"


def test_mlops_validate_runs_the_step(tmp_path, churn_csv):
    out = tmp_path / "out"
    dirs = [f"--{d}-dir={out / d}" for d in ("accepted", "quarantine", "report")]
    assert cli.main(["validate", "--input", churn_csv, *dirs]) == 0
    assert json.loads((out / "report" / "validation.json").read_text())["rows_accepted"] == 4000


def test_main_names_the_file_that_lacks_a_column(tmp_path, failure_file):
    data = tmp_path / "in"
    data.mkdir()
    frame = synthetic.generate(100, seed=4)
    frame.iloc[:50].to_csv(data / "a.csv", index=False)
    frame.iloc[50:].drop(columns="total_charges").to_csv(data / "b.csv", index=False)

    code, report, *_ = run(tmp_path, "--input", str(data))

    assert code == 1
    assert report["table_errors"] == [f"{data / 'b.csv'}: missing column total_charges"]
    assert "b.csv: missing column total_charges" in failure_file.read_text()


def test_quarantine_keeps_values_as_they_arrived_with_their_file(tmp_path, failure_file):
    path = tmp_path / "batch.csv"
    frame = synthetic.generate(100, seed=5)
    frame["monthly_charges"] = frame["monthly_charges"].astype(object)
    frame.loc[3, "monthly_charges"] = " "
    frame.loc[4, "monthly_charges"] = "n/a"
    frame.to_csv(path, index=False)

    code, _, _, quarantined = run(tmp_path, "--input", str(path))

    assert code == 0
    kept = pd.read_csv(tmp_path / "out" / "quarantine" / "quarantine.csv", dtype=str, keep_default_na=False)
    assert kept["monthly_charges"].tolist() == [" ", "n/a"]
    assert kept["source_file"].tolist() == ["batch.csv", "batch.csv"]
    assert quarantined["reason"].tolist() == [
        "monthly_charges: no value (null or empty), but it is not nullable",
        "monthly_charges: 'n/a' is not a number",
    ]
    assert kept["line"].tolist() == ["5", "6"]  # the header is line 1


def test_each_instance_of_a_sharded_step_names_its_files_after_its_host(tmp_path, failure_file, monkeypatch):
    path = tmp_path / "part.csv"
    synthetic.generate(50, seed=5).to_csv(path, index=False)
    monkeypatch.setenv("SM_CURRENT_HOST", "algo-2")
    monkeypatch.setenv("SM_HOSTS", "algo-1,algo-2")
    out = tmp_path / "out"
    code = main(
        [
            "--input",
            str(path),
            "--accepted-dir",
            str(out / "a"),
            "--quarantine-dir",
            str(out / "q"),
            "--report-dir",
            str(out / "r"),
        ]
    )
    assert code == 0
    assert [p.name for p in (out / "a").iterdir()] == ["accepted-algo-2.csv"]
    assert json.loads((out / "r" / "validation-algo-2.json").read_text())["rows_in"] == 50


@pytest.mark.parametrize("entry", ["validate", "ingestion"])
def test_an_instance_dealt_no_file_reports_zero_rows_and_passes(tmp_path, failure_file, monkeypatch, entry):
    """More instances than files (ProcessingInstanceCount > files): the training pipeline's
    ValidateData and the ingestion pipeline's share this entry point, so neither fails."""
    from model_code.ingestion import ingest

    empty = tmp_path / "input"
    empty.mkdir()
    monkeypatch.setenv("SM_CURRENT_HOST", "algo-2")
    monkeypatch.setenv("SM_HOSTS", "algo-1,algo-2")
    args = ["--input", str(empty), "--report-dir", str(tmp_path / "report"),
            "--accepted-dir", str(tmp_path / "a"), "--quarantine-dir", str(tmp_path / "q")]  # fmt: skip
    code = main(args) if entry == "validate" else ingest.main(["validate", *args])
    report = json.loads((tmp_path / "report" / "validation-algo-2.json").read_text())
    assert code == 0 and not failure_file.exists()
    assert (report["rows_in"], report["rows_accepted"], report["rows_quarantined"]) == (0, 0, 0)


def test_one_instance_with_no_file_still_fails(tmp_path, failure_file):
    (tmp_path / "input").mkdir()
    assert main(["--input", str(tmp_path / "input"), "--report-dir", str(tmp_path / "r")]) == 1
    assert "no CSV or Parquet files to validate" in failure_file.read_text()


def test_the_report_holds_every_count_and_setting_and_is_laid_out_for_reading(tmp_path, churn_csv):
    reports = tmp_path / "reports" / "2026" / "validation"  # folders made as needed
    assert main(["--input", churn_csv, "--max-quarantine-share", "0.1", "--report-dir", str(reports),
                 "--accepted-dir", str(tmp_path / "a"), "--quarantine-dir", str(tmp_path / "q")]) == 0  # fmt: skip
    text = (reports / "validation.json").read_text()
    report = json.loads(text)
    assert report == {
        "schema": "customer-churn",
        "input_files": [churn_csv],
        "rows_in": 4000,
        "rows_accepted": 4000,
        "rows_quarantined": 0,
        "quarantined_share": 0.0,
        "reasons": {},
        "table_errors": [],
        "rows_in_per_file": {churn_csv: 4000},
        "max_quarantine_share": 0.1,
        "ignored_columns": [],
        "passed": True,
        "failure": None,
    }
    assert text == json.dumps(report, indent=2) + "\n"  # one key a line, as a person opens it


def test_an_instance_dealt_no_file_writes_the_whole_report(tmp_path, monkeypatch):
    (tmp_path / "input").mkdir()
    monkeypatch.setenv("SM_CURRENT_HOST", "algo-3")
    monkeypatch.setenv("SM_HOSTS", "algo-1,algo-2,algo-3")
    assert main(["--input", str(tmp_path / "input"), "--report-dir", str(tmp_path / "r")]) == 0
    text = (tmp_path / "r" / "validation-algo-3.json").read_text()
    report = json.loads(text)
    assert report == {"schema": "customer-churn", "input_files": [], "rows_in": 0, "rows_accepted": 0,
                      "rows_quarantined": 0, "rows_in_per_file": {}, "passed": True, "failure": None}  # fmt: skip
    assert text == json.dumps(report, indent=2) + "\n"


def test_help_shows_each_option_with_its_default(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "400")  # argparse wraps at the terminal's width, long paths too
    with pytest.raises(SystemExit) as exited:
        main(["--help"])
    shown = capsys.readouterr().out
    assert exited.value.code == 0
    assert shown.startswith("usage: mlops validate [-h] [--input INPUT] [--schema SCHEMA]")
    for option, default in [
        ("--input", "/opt/ml/processing/input/data"),
        ("--schema", str(schema.EXAMPLE_SCHEMA)),
        ("--accepted-dir", "/opt/ml/processing/output/accepted"),
        ("--quarantine-dir", "/opt/ml/processing/output/quarantine"),
        ("--report-dir", "/opt/ml/processing/output/report"),
        ("--max-quarantine-share", "0.05"),
        ("--ingestion-time", "now"),
    ]:
        assert option in shown
        assert f"(default: {default})" in shown, option


@pytest.mark.parametrize("given", ["yesterday", ""])
def test_an_ingestion_time_that_is_no_time_is_refused_naming_the_option(given, capsys):
    with pytest.raises(SystemExit) as exited:
        main(["--ingestion-time", given])
    assert exited.value.code == 2
    assert f"argument --ingestion-time: expected an ISO-8601 time, got {given!r}" in capsys.readouterr().err


def test_data_without_event_time_gets_the_ingestion_time_in_utc_whatever_the_machines_zone(
    tmp_path, monkeypatch
):
    monkeypatch.setenv("TZ", "XYZ-05:30")  # a machine five and a half hours ahead of UTC
    time.tzset()
    try:
        path = tmp_path / "no-time.csv"
        synthetic.generate(10, seed=2).drop(columns="event_time").to_csv(path, index=False)
        before = pd.Timestamp.now(tz="UTC").floor("s")
        code, _, accepted, _ = run(tmp_path, "--input", str(path))
        after = pd.Timestamp.now(tz="UTC")
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()
    assert code == 0
    stamped = pd.to_datetime(accepted.event_time, utc=True)
    assert accepted.event_time.str.endswith("Z").all()
    assert ((stamped >= before) & (stamped <= after)).all(), (before, stamped.iloc[0], after)


def test_event_times_finer_than_a_second_keep_their_fraction(tmp_path):
    path = tmp_path / "fine.csv"
    frame = synthetic.generate(3, seed=2)
    frame["event_time"] = ["2026-03-01T12:00:00.250Z", "2026-03-01T12:00:01Z", "2026-03-01T12:00:02.000001Z"]
    frame.to_csv(path, index=False)
    code, _, accepted, _ = run(tmp_path, "--input", str(path))
    assert code == 0
    assert accepted.event_time.tolist() == [
        "2026-03-01T12:00:00.250000Z",
        "2026-03-01T12:00:01.000000Z",
        "2026-03-01T12:00:02.000001Z",
    ]


def test_the_failure_lists_the_three_most_frequent_reasons_with_their_counts(raw, tmp_path, churn_schema):
    raw.loc[0:5, "contract"] = "lifetime"  # 6 rows
    raw.loc[6:9, "tenure_months"] = 999  # 4
    raw.loc[10:12, "monthly_charges"] = -5  # 3
    raw.loc[13, "support_calls"] = 99  # 1
    result = validate(read(raw, tmp_path, churn_schema), churn_schema)
    with pytest.raises(ValidationFailed) as failed:
        result.check(max_quarantine_share=0.5)
    assert str(failed.value) == (
        "data validation failed: quarantined 70.0% of rows (14 of 20), above the allowed 50.0%; top reasons: "
        "'contract: not one of month-to-month | one-year | two-year' (6), "
        "'tenure_months: above the maximum 120' (4), 'monthly_charges: below the minimum 0' (3)"
    )


def test_empty_input_fails_saying_so(raw, tmp_path, churn_schema):
    result = validate(read(raw.iloc[:0], tmp_path, churn_schema), churn_schema)
    with pytest.raises(ValidationFailed) as failed:
        result.check()
    assert str(failed.value) == "data validation failed: no rows to validate: the input is empty"


def test_an_expectation_great_expectations_cannot_evaluate_fails_the_step_naming_it(
    raw, tmp_path, churn_schema, monkeypatch
):
    """A team that adds an expectation to the suite (contract/suite.py) which GX cannot
    evaluate on the column learns so from a table error, instead of the check passing."""
    import great_expectations.expectations as gxe

    from model_code.contract import validate as validation

    def extended(s):
        suite = build_suite(s)
        suite.expectations.append(gxe.ExpectColumnValuesToBeBetween(column="customer_id", min_value=0))
        return suite

    monkeypatch.setattr(validation, "build_suite", extended)
    result = validate(read(raw, tmp_path, churn_schema), churn_schema)
    assert len(result.table_errors) == 1
    assert result.table_errors[0].startswith(
        "customer_id: could not check expect_column_values_to_be_between: "
    )
    assert result.rows_quarantined == 0


def test_a_folder_of_csv_and_parquet_files_is_validated_whole(tmp_path):
    data = tmp_path / "in" / "2026-03"
    data.mkdir(parents=True)
    frame = synthetic.generate(30, seed=6)
    frame.iloc[:10].to_csv(data / "a.csv", index=False)
    frame.iloc[10:].to_parquet(data / "b.parquet", index=False)
    (data / "notes.txt").write_text("not data")
    code, report, accepted, _ = run(tmp_path, "--input", str(tmp_path / "in"))
    assert code == 0
    assert report["rows_in_per_file"] == {str(data / "a.csv"): 10, str(data / "b.parquet"): 20}
    assert sorted(accepted.customer_id) == sorted(frame.customer_id)


def test_the_share_quarantined_is_reported_to_six_places(tmp_path):
    path = tmp_path / "three.csv"
    frame = synthetic.generate(3, seed=2).astype(object)
    frame.loc[1, "tenure_months"] = 999
    frame.to_csv(path, index=False)
    code, report, *_ = run(tmp_path, "--input", str(path), "--max-quarantine-share", "0.5")
    assert code == 0
    assert report["quarantined_share"] == 0.333333


def test_data_without_event_time_has_it_first_in_the_quarantine(tmp_path):
    path = tmp_path / "no-time.csv"
    frame = synthetic.generate(5, seed=2).drop(columns="event_time").astype(object)
    frame.loc[0, "tenure_months"] = 999
    frame.to_csv(path, index=False)
    run(
        tmp_path,
        "--input",
        str(path),
        "--ingestion-time",
        "2026-03-01T12:00:00Z",
        "--max-quarantine-share",
        "1",
    )
    header = (tmp_path / "out" / "quarantine" / "quarantine.csv").read_text().splitlines()[0].split(",")
    assert header == ["event_time", *frame.columns, "source_file", "line", "raw_line", "reason"]


def test_a_file_with_only_its_header_fails_on_one_instance(tmp_path, failure_file):
    path = tmp_path / "header.csv"
    synthetic.generate(1, seed=2).iloc[:0].to_csv(path, index=False)
    code, report, *_ = run(tmp_path, "--input", str(path))
    assert code == 1
    assert report["failure"] == "data validation failed: no rows to validate: the input is empty"


def test_an_instance_of_several_whose_files_hold_no_rows_passes(tmp_path, failure_file, monkeypatch):
    """Its upload is judged by the rows the other instances hold."""
    monkeypatch.setenv("SM_CURRENT_HOST", "algo-1")
    monkeypatch.setenv("SM_HOSTS", "algo-1,algo-2")
    path = tmp_path / "header.csv"
    synthetic.generate(1, seed=2).iloc[:0].to_csv(path, index=False)
    out = tmp_path / "out"
    dirs = [f"--{d}-dir={out / d}" for d in ("accepted", "quarantine", "report")]
    assert main(["--input", str(path), *dirs]) == 0
    report = json.loads((out / "report" / "validation-algo-1.json").read_text())
    assert (report["rows_in"], report["passed"], report["failure"]) == (0, True, None)
    assert not failure_file.exists()


def test_when_the_suites_types_disagree_with_the_data_the_step_names_each_column(
    raw, tmp_path, churn_schema, monkeypatch
):
    """The suite's type names follow what pandas holds (suite.GX_TYPES); should a pandas or GX
    release change them, the step fails naming each column and its dtype and blames no row."""
    from model_code.contract import suite

    monkeypatch.setitem(suite.GX_TYPES, "integral", "int32")
    result = validate(read(raw, tmp_path, churn_schema), churn_schema)
    assert result.table_errors == [
        f"{name}: expected integral (Int64), got dtype Int64"
        for name in ("tenure_months", "support_calls", "senior_citizen")
    ]
    assert result.rows_quarantined == 0


def test_outputs_go_into_folders_that_exist_already_as_sagemaker_makes_them(tmp_path, churn_csv, capsys):
    out = tmp_path / "out"
    for d in ("accepted", "quarantine", "report"):
        (out / d).mkdir(parents=True)
    code, report, accepted, _ = run(tmp_path, "--input", churn_csv)
    assert (code, report["rows_accepted"], len(accepted)) == (0, 4000, 4000)
    # the line the processing job's log shows
    assert (
        "validated 4000 rows from 1 file(s): 4000 accepted, 0 quarantined (0.0%)" in capsys.readouterr().out
    )


@pytest.mark.parametrize("existing", [True, False])
def test_an_instance_dealt_no_file_says_so_and_reports_into_any_folder(
    tmp_path, monkeypatch, capsys, existing
):
    reports = tmp_path / "job" / "report"
    if existing:
        reports.mkdir(parents=True)
    (tmp_path / "input").mkdir()
    monkeypatch.setenv("SM_CURRENT_HOST", "algo-2")
    monkeypatch.setenv("SM_HOSTS", "algo-1,algo-2")
    assert main(["--input", str(tmp_path / "input"), "--report-dir", str(reports)]) == 0
    assert json.loads((reports / "validation-algo-2.json").read_text())["rows_in"] == 0
    assert "algo-2: no files in this shard" in capsys.readouterr().out


def test_a_blank_label_is_quarantined_as_required(raw, tmp_path, churn_schema):
    raw.loc[2, "churned"] = " "
    result = validate(read(raw, tmp_path, churn_schema), churn_schema)
    assert result.quarantined.customer_id.tolist() == [raw.customer_id[2]]
    assert result.quarantined.reason.tolist() == ["churned: no value (null or empty), but it is required"]


def test_a_column_of_which_no_value_parses_is_named_with_its_first_value_and_count(
    raw, tmp_path, churn_schema
):
    raw["total_charges"] = ["n/a", "unknown", " ", *["n/a"] * 17]  # a blank is no value, so not counted
    result = validate(read(raw, tmp_path, churn_schema), churn_schema)
    assert result.table_errors == [
        "total_charges: none of its 19 values is a finite number (e.g. 'n/a'); "
        "is it the right column, of the right type?"
    ]


def test_a_row_breaking_a_rule_and_a_malformed_line_are_both_counted(tmp_path, churn_schema):
    path = tmp_path / "mixed.csv"
    frame = synthetic.generate(5, seed=2).astype(object)
    frame.loc[1, "tenure_months"] = 999
    text = frame.to_csv(index=False) + "C-extra,1,2\n"  # a line with too few fields
    path.write_text(text)
    batch = table.read_files([path], churn_schema)
    result = validate(batch.records[churn_schema.columns], churn_schema, batch.rejected)
    assert result.rows_in == 6 and result.rows_quarantined == 2
    assert result.reasons["tenure_months: above the maximum 120"] == 1
    assert sum(result.reasons.values()) == 2, result.reasons
    # a malformed line is a quarantined row like the others: every column, null, and its reason
    line = result.quarantined.iloc[-1]
    assert list(result.quarantined.columns) == [*churn_schema.columns, "reason"]
    assert line[churn_schema.columns].isna().all()


def test_a_file_lacking_a_column_is_named_before_the_other_table_errors(tmp_path, failure_file):
    data = tmp_path / "in"
    data.mkdir()
    frame = synthetic.generate(40, seed=4).astype(object)
    frame["monthly_charges"] = "n/a"
    frame.iloc[:20].to_csv(data / "a.csv", index=False)
    frame.iloc[20:].drop(columns="total_charges").to_csv(data / "b.csv", index=False)
    code, report, *_ = run(tmp_path, "--input", str(data), "--max-quarantine-share", "1")
    assert code == 1
    assert report["table_errors"] == [
        f"{data / 'b.csv'}: missing column total_charges",
        "monthly_charges: none of its 40 values is a finite number (e.g. 'n/a'); "
        "is it the right column, of the right type?",
    ]
    assert failure_file.read_text() == "data validation failed: " + "; ".join(report["table_errors"])


def test_a_share_quarantined_equal_to_the_allowed_one_passes(raw, tmp_path, churn_schema):
    raw.loc[0, "tenure_months"] = 999  # 1 of 20 rows: 5%
    result = validate(read(raw, tmp_path, churn_schema), churn_schema)
    assert result.quarantined_share == 0.05
    result.check(max_quarantine_share=0.05)
