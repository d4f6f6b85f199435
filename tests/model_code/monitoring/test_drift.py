"""The drift monitor: finds planted drift, stays quiet on fresh samples, and shards exactly."""

from __future__ import annotations

import json

import boto3
import numpy as np
import pandas as pd
import pytest
from moto import mock_aws
from numpy.testing import assert_allclose
from scipy import stats

from mlops.cli import main as mlops
from model_code import metrics
from model_code.contract import schema, synthetic
from model_code.monitoring import drift

N_ROWS = 20_000


def _shards(frame: pd.DataFrame, n: int) -> list[pd.DataFrame]:
    """Rows dealt round-robin, as a load balancer spreads requests over instances."""
    return [frame.iloc[i::n] for i in range(n)]


@pytest.fixture(scope="module")
def reference() -> pd.DataFrame:
    return synthetic.generate(N_ROWS, seed=1)


@pytest.fixture(scope="module")
def fresh() -> pd.DataFrame:
    """Another sample of the reference's distribution."""
    return synthetic.generate(N_ROWS, seed=2)


def test_planted_data_drift_flags_exactly_the_moved_features(reference, churn_schema):
    current = synthetic.generate(N_ROWS, seed=2, data_drift=1.0)
    report = drift.detect(reference, current, churn_schema)
    assert report.drifted_features == sorted(synthetic.DATA_DRIFT_FEATURES + synthetic.DATA_DRIFT_DERIVED)


@pytest.mark.parametrize("seed", [2, 3, 4])
def test_fresh_samples_of_the_same_distribution_flag_nothing(reference, churn_schema, seed):
    report = drift.detect(reference, synthetic.generate(N_ROWS, seed=seed), churn_schema)
    assert report.drifted_features == []


def test_category_mix_change_alone_is_flagged(reference, fresh, churn_schema):
    current = fresh.copy()
    methods = churn_schema.feature("payment_method").values
    current["payment_method"] = np.random.default_rng(0).choice(methods, N_ROWS, p=[0.6, 0.2, 0.1, 0.1])
    report = drift.detect(reference, current, churn_schema)
    assert report.drifted_features == ["payment_method"]
    assert report.features["payment_method"].test == "chi2"


def test_unseen_category_is_drift_and_named(reference, fresh, churn_schema):
    current = fresh.copy()
    current.loc[current.index[: N_ROWS // 5], "contract"] = "lifetime"
    report = drift.detect(reference, current, churn_schema)
    assert "contract" in report.drifted_features
    assert report.features["contract"].unseen_categories == ("lifetime",)


def test_rise_in_nulls_is_drift(reference, fresh, churn_schema):
    current = fresh.copy()
    current.loc[current.index[: N_ROWS * 3 // 10], "monthly_charges"] = np.nan
    report = drift.detect(reference, current, churn_schema)
    assert report.drifted_features == ["monthly_charges"]
    assert report.features["monthly_charges"].current_null_share == pytest.approx(0.3)


def test_prediction_drift_is_found_when_predictions_differ(reference, fresh, churn_schema):
    rng = np.random.default_rng(0)
    ref = reference.assign(**{drift.PREDICTION_COLUMN: rng.beta(2, 5, N_ROWS)})
    cur = fresh.assign(**{drift.PREDICTION_COLUMN: rng.beta(3, 4, N_ROWS)})
    report = drift.detect(ref, cur, churn_schema)
    assert report.drifted_features == [drift.PREDICTION_COLUMN]


def test_prediction_is_left_out_when_one_side_lacks_it(reference, fresh, churn_schema):
    ref = reference.assign(**{drift.PREDICTION_COLUMN: 0.5})
    report = drift.detect(ref, fresh, churn_schema)
    assert drift.PREDICTION_COLUMN not in report.features
    assert list(report.features) == churn_schema.feature_names


def test_binned_ks_statistic_is_close_to_the_exact_one(reference, churn_schema):
    current = synthetic.generate(N_ROWS, seed=2, data_drift=0.2)
    report = drift.detect(reference, current, churn_schema)
    for name in ("monthly_charges", "tenure_months"):
        exact = stats.ks_2samp(reference[name], current[name])
        assert report.features[name].statistic == pytest.approx(exact.statistic, abs=2e-3), name


def test_missing_feature_column_is_named(reference, fresh, churn_schema):
    with pytest.raises(ValueError, match=r"current: missing feature columns \['contract'\]"):
        drift.detect(reference, fresh.drop(columns="contract"), churn_schema)


def test_profiles_of_shards_add_up_to_the_profile_of_the_whole(reference, fresh, churn_schema):
    baseline = drift.Baseline.from_frame(reference, churn_schema)
    shards = [baseline.profile(part) for part in _shards(fresh, 3)]
    assert shards[0] + shards[1] + shards[2] == baseline.profile(fresh)
    assert drift.merge(shards) == baseline.profile(fresh)


def test_merged_unseen_examples_match_the_whole(reference, fresh, churn_schema):
    baseline = drift.Baseline.from_frame(reference, churn_schema)
    current = fresh.copy()
    current.loc[current.index[:30], "contract"] = [f"new-{i:02d}" for i in range(30)]
    merged = drift.merge([baseline.profile(current.iloc[:15]), baseline.profile(current.iloc[15:])])
    assert merged.unseen["contract"] == baseline.profile(current).unseen["contract"]
    assert len(merged.unseen["contract"]) == drift.MAX_UNSEEN_EXAMPLES


def test_profiles_of_different_baselines_do_not_merge(reference, fresh, churn_schema):
    one = drift.Baseline.from_frame(reference, churn_schema)
    other = drift.Baseline.from_frame(fresh, churn_schema)
    with pytest.raises(ValueError, match="cannot merge profiles of different baselines"):
        one.profile(fresh) + other.profile(fresh)


def test_baseline_survives_a_json_round_trip(reference, fresh, churn_schema):
    baseline = drift.Baseline.from_frame(reference, churn_schema)
    restored = drift.Baseline.from_dict(json.loads(json.dumps(baseline.to_dict())))
    assert restored.to_dict() == baseline.to_dict()
    assert drift.compare(restored, restored.profile(fresh)) == drift.compare(
        baseline, baseline.profile(fresh)
    )


def test_profile_survives_a_json_round_trip(reference, fresh, churn_schema):
    profile = drift.Baseline.from_frame(reference, churn_schema).profile(fresh)
    assert drift.Profile.from_dict(json.loads(json.dumps(profile.to_dict()))) == profile


def test_metrics_carry_model_and_feature_dimensions(reference, fresh, churn_schema):
    data = drift.detect(reference, fresh, churn_schema).to_metrics(churn_schema.name)
    psi = [d for d in data if d["MetricName"] == "FeaturePSI"]
    assert [d["Dimensions"] for d in psi] == [
        [{"Name": "Model", "Value": "customer-churn"}, {"Name": "Feature", "Value": f}]
        for f in churn_schema.feature_names
    ]
    (count,) = [d for d in data if d["MetricName"] == "DriftedFeatureCount"]
    assert count["Dimensions"] == [{"Name": "Model", "Value": "customer-churn"}]
    assert count["Value"] == 0


def test_metrics_are_accepted_by_cloudwatch(reference, fresh, churn_schema):
    data = drift.detect(reference, fresh, churn_schema).to_metrics(churn_schema.name)
    with mock_aws():
        cloudwatch = boto3.client("cloudwatch", region_name="eu-west-1")
        cloudwatch.put_metric_data(Namespace=metrics.NAMESPACE, MetricData=data)
        listed = cloudwatch.list_metrics(Namespace=metrics.NAMESPACE, MetricName="FeatureDrifted")["Metrics"]
    assert len(listed) == len(churn_schema.feature_names)


def test_report_json_lists_drifted_features_and_thresholds(reference, churn_schema):
    current = synthetic.generate(N_ROWS, seed=2, data_drift=1.0)
    out = json.loads(json.dumps(drift.detect(reference, current, churn_schema).to_dict()))
    assert out["drifted_features"] == sorted(synthetic.DATA_DRIFT_FEATURES + synthetic.DATA_DRIFT_DERIVED)
    assert (out["psi_threshold"], out["p_value_threshold"]) == (0.05, 0.01)
    assert set(out["features"]["contract"]) >= {"test", "statistic", "p_value", "psi", "drifted"}


def test_drift_command_prints_a_table_and_writes_json(tmp_path, capsys):
    synthetic.generate(3000, seed=1).to_csv(tmp_path / "ref.csv", index=False)
    synthetic.generate(3000, seed=2, data_drift=1.0).to_csv(tmp_path / "cur.csv", index=False)
    args = ["--reference", str(tmp_path / "ref.csv"), "--current", str(tmp_path / "cur.csv")]
    assert mlops(["drift", *args, "--json", str(tmp_path / "drift.json")]) == 0
    out = capsys.readouterr().out
    assert "monthly_charges" in out
    assert "drifted: contract, internet_service, monthly_charges, tenure_months, total_charges" in out
    assert json.loads((tmp_path / "drift.json").read_text())["drifted_features"][0] == "contract"


def test_merged_report_matches_the_whole(reference, fresh, churn_schema):
    baseline = drift.Baseline.from_frame(reference, churn_schema)
    merged = drift.compare(baseline, drift.merge([baseline.profile(p) for p in _shards(fresh, 4)]))
    whole = drift.detect(reference, fresh, churn_schema)
    for name, f in whole.features.items():
        assert_allclose([merged.features[name].psi, merged.features[name].p_value], [f.psi, f.p_value])


@pytest.mark.parametrize(
    "values",
    [
        np.random.default_rng(0).normal(size=50_000),
        np.random.default_rng(1).lognormal(0, 2, 50_000),  # heavy tail: many edges per grid cell
        np.round(np.random.default_rng(2).exponential(30, 50_000)),  # ties on integers
    ],
    ids=["normal", "lognormal", "integers"],
)
def test_fast_bucketing_agrees_with_binary_search(values):
    bins = drift.Baseline.from_frame(
        pd.DataFrame({"x": values[:25_000]}),
        schema.parse(
            {
                "name": "one-column",
                "entity_id": "id",
                "target": {"column": "y", "positive": 1},
                "features": [{"name": "x", "type": "fractional"}],
            }
        ),
    ).bins["x"]
    current = np.concatenate([values[25_000:] * 1.3 + 0.1, bins.edges, [-np.inf, np.inf, 1e300]])
    np.testing.assert_array_equal(bins.bucket(current), np.searchsorted(bins.edges, current, side="right"))


# The rule's sensitivity and false-positive rate, on planted data (see the module docstring).
RULE_SCHEMA = schema.parse(
    {
        "name": "rule",
        "entity_id": "id",
        "target": {"column": "y", "positive": 1},
        "features": [
            {"name": "x", "type": "fractional"},
            {"name": "k", "type": "integral"},
            {"name": "c", "type": "string"},
            {"name": "z", "type": "fractional", "nullable": True},
        ],
    }
)


def _sample(rng: np.random.Generator, n: int, shift: float = 0.0, new_category: float = 0.0) -> pd.DataFrame:
    """A normal, a count, a skewed category mix and a log-normal with 10% nulls; drift planted on request."""
    c = rng.choice(list("abcdefgh"), n, p=[0.3, 0.2, 0.15, 0.1, 0.1, 0.05, 0.05, 0.05]).astype(object)
    c[rng.random(n) < new_category] = "new"
    z = rng.lognormal(0.0, 1.0, n)
    z[rng.random(n) < 0.1] = np.nan
    return pd.DataFrame({"x": rng.normal(shift, 1.0, n), "k": rng.poisson(2.0, n), "c": c, "z": z})


@pytest.mark.parametrize("n_rows", [2_000, 5_000, 50_000])
def test_a_third_of_a_standard_deviation_and_a_new_category_at_2_percent_are_drift(n_rows):
    rng = np.random.default_rng(n_rows)
    for _ in range(5):
        report = drift.detect(_sample(rng, n_rows), _sample(rng, n_rows, 0.3, 0.02), RULE_SCHEMA)
        assert report.drifted_features == ["c", "x"], {
            n: (f.p_value, f.psi) for n, f in report.features.items()
        }
        assert report.features["c"].unseen_categories == ("new",)


# A million rows: the next test, whose other three features are fresh samples too.
@pytest.mark.parametrize(("n_rows", "trials"), [(1_000, 100), (10_000, 25), (100_000, 5)])
def test_fresh_samples_flag_at_most_1_percent_of_feature_checks(n_rows, trials):
    rng = np.random.default_rng(7)
    flagged = checks = 0
    for _ in range(trials):
        report = drift.detect(_sample(rng, n_rows), _sample(rng, n_rows), RULE_SCHEMA)
        flagged += len(report.drifted_features)
        checks += len(report.features)
    assert flagged <= 0.01 * checks


def test_a_negligible_shift_on_a_million_rows_is_significant_but_not_drift():
    rng = np.random.default_rng(3)
    report = drift.detect(_sample(rng, 1_000_000), _sample(rng, 1_000_000, shift=0.02), RULE_SCHEMA)
    assert report.features["x"].p_value < 1e-6  # a test alone would flag it
    assert report.drifted_features == []


def test_the_rule_is_the_same_on_merged_shards():
    rng = np.random.default_rng(5)
    reference, current = _sample(rng, 20_000), _sample(rng, 20_000, 0.3, 0.02)
    baseline = drift.Baseline.from_frame(reference, RULE_SCHEMA)
    merged = drift.merge([baseline.profile(part) for part in _shards(current, 4)])
    sharded = drift.compare(baseline, merged, schema=RULE_SCHEMA)
    assert sharded.to_dict() == drift.detect(reference, current, RULE_SCHEMA).to_dict()


def test_a_feature_sets_its_own_thresholds_in_the_schema():
    raw = RULE_SCHEMA.to_dict()
    features = [{**f, "drift": {"psi": 0.5}} if f["name"] == "x" else f for f in raw["features"]]
    strict = schema.parse({**raw, "features": features})
    rng = np.random.default_rng(9)
    report = drift.detect(_sample(rng, 5_000), _sample(rng, 5_000, 0.3, 0.02), strict)
    assert report.drifted_features == ["c"]
    assert (report.features["x"].psi_threshold, report.features["c"].psi_threshold) == (
        0.5,
        drift.DEFAULT_PSI_THRESHOLD,
    )


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({"psi": -1}, "features[0].drift.psi: expected a number > 0, got -1"),
        ({"p_value": 2}, "features[0].drift.p_value: expected a number between 0 and 1, got 2"),
        ({"ks": 0.1}, "features[0].drift.ks: unknown key; expected psi, p_value"),
        (0.1, "features[0].drift: expected a mapping with psi and/or p_value, got 0.1"),
    ],
)
def test_a_bad_drift_threshold_in_the_schema_names_the_key(value, message):
    raw = RULE_SCHEMA.to_dict()
    features = [{**raw["features"][0], "drift": value}, *raw["features"][1:]]
    with pytest.raises(schema.SchemaError) as error:
        schema.parse({**raw, "features": features})
    assert str(error.value) == message


def test_the_verdict_at_its_thresholds_follows_the_documented_rule(reference, churn_schema):
    """drifted = p_value < p_value_threshold and psi >= psi_threshold (the module's rule), at the edges."""
    current = synthetic.generate(N_ROWS, seed=2, data_drift=1.0)
    baseline = drift.Baseline.from_frame(reference, churn_schema)
    profile = baseline.profile(current)
    name = synthetic.DATA_DRIFT_FEATURES[0]
    measured = drift.compare(baseline, profile).features[name]
    p, psi = measured.p_value, measured.psi
    assert p < 0.5 and psi > 0  # the planted drift moved this feature

    def verdict(psi_threshold: float, p_value_threshold: float) -> bool:
        report = drift.compare(
            baseline, profile, psi_threshold=psi_threshold, p_value_threshold=p_value_threshold
        )
        return report.features[name].drifted

    above_p = np.nextafter(p, 1.0)
    assert verdict(psi, above_p) is True  # PSI exactly at its threshold counts as drifted
    assert verdict(np.nextafter(psi, np.inf), above_p) is False  # just above it does not
    assert verdict(psi, p) is False  # a p-value equal to its threshold is not significant


def test_metrics_publish_each_features_figures_under_the_model_name_given(reference, churn_schema):
    """The monitor publishes under the deployed model's name, which need not be the schema's."""
    current = synthetic.generate(N_ROWS, seed=2, data_drift=1.0)
    report = drift.detect(reference, current, churn_schema)
    data = report.to_metrics("churn-endpoint-v2")
    assert {d["Dimensions"][0]["Value"] for d in data} == {"churn-endpoint-v2"}
    tenure = {
        d["MetricName"]: d["Value"]
        for d in data
        if {"Name": "Feature", "Value": "tenure_months"} in d["Dimensions"]
    }
    f = report.features["tenure_months"]
    assert tenure == {"FeaturePSI": f.psi, "FeatureDriftPValue": f.p_value, "FeatureDrifted": 1.0}
    (count,) = [d for d in data if d["MetricName"] == "DriftedFeatureCount"]
    assert (count["Value"], count["Unit"]) == (len(report.drifted_features), "Count")


def test_the_report_json_holds_exactly_the_documented_fields(reference, fresh, churn_schema):
    current = fresh.copy()
    current.loc[current.index[:400], "payment_method"] = "crypto"
    out = json.loads(json.dumps(drift.detect(reference, current, churn_schema).to_dict()))
    assert set(out) == {
        "model", "reference_rows", "current_rows", "psi_threshold", "p_value_threshold", "features",
        "drifted_features",
    }  # fmt: skip
    assert set(out["features"]["payment_method"]) == {
        "kind", "test", "statistic", "p_value", "psi", "drifted", "reference_null_share", "current_null_share",
        "unseen_categories", "psi_threshold", "p_value_threshold",
    }  # fmt: skip
    assert out["features"]["payment_method"]["unseen_categories"] == ["crypto"]


def _drift_files(tmp_path) -> list[str]:
    """A reference file and a current one with planted drift; the command's arguments naming them."""
    synthetic.generate(3000, seed=1).to_csv(tmp_path / "ref.csv", index=False)
    synthetic.generate(3000, seed=2, data_drift=1.0).to_csv(tmp_path / "cur.csv", index=False)
    return ["--reference", str(tmp_path / "ref.csv"), "--current", str(tmp_path / "cur.csv")]


@pytest.mark.parametrize(
    ("option", "key"), [("--psi-threshold", "psi_threshold"), ("--p-value-threshold", "p_value_threshold")]
)
def test_the_drift_commands_thresholds_decide_its_verdict(tmp_path, option, key):
    """Planted drift is flagged at the defaults (test above); a PSI threshold of 100, or a
    p-value threshold of 0, flags nothing, and the JSON says which threshold judged."""
    out = tmp_path / "drift.json"
    value = "100" if key == "psi_threshold" else "0"
    assert drift.main([*_drift_files(tmp_path), option, value, "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["drifted_features"] == []
    assert report[key] == float(value)
    assert {f[key] for f in report["features"].values()} == {float(value)}


def test_the_drift_command_names_the_options_it_lacks(capsys):
    with pytest.raises(SystemExit) as exit_:
        drift.main([])
    assert exit_.value.code == 2
    assert "mlops drift: error: the following arguments are required: --reference, --current" in (
        capsys.readouterr().err
    )


def test_the_drift_command_reports_an_unreadable_file_as_a_usage_error(tmp_path, capsys):
    missing = tmp_path / "nowhere.csv"
    args = _drift_files(tmp_path)
    with pytest.raises(SystemExit) as exit_:
        drift.main([*args[:2], "--current", str(missing)])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: mlops drift") and str(missing) in err


def test_a_parquet_file_gives_the_verdict_its_csv_gives(tmp_path):
    reference = synthetic.generate(3000, seed=1)
    reference.to_parquet(tmp_path / "ref.parquet")
    args = _drift_files(tmp_path)
    assert drift.main([*args, "--json", str(tmp_path / "csv.json")]) == 0
    assert (
        drift.main(
            ["--reference", str(tmp_path / "ref.parquet"), *args[2:], "--json", str(tmp_path / "pq.json")]
        )
        == 0
    )
    from_csv, from_parquet = (json.loads((tmp_path / f"{n}.json").read_text()) for n in ("csv", "pq"))
    assert from_parquet["drifted_features"] == from_csv["drifted_features"] != []
    assert from_parquet["reference_rows"] == 3000


def test_a_category_spelt_like_a_null_is_read_as_the_category(tmp_path):
    """`NA` (North America) is a region, not a missing value: only an empty cell is null."""
    regions = schema.parse(
        {
            "name": "regions",
            "entity_id": "id",
            "target": {"column": "y", "positive": 1},
            "features": [{"name": "region", "type": "string", "values": ["NA", "EU", "None"]}],
        }
    )
    (tmp_path / "r.csv").write_text("id,region\n1,NA\n2,EU\n3,None\n")
    assert drift.read_frame(tmp_path / "r.csv", regions)["region"].tolist() == ["NA", "EU", "None"]


def test_predictions_in_a_csv_are_compared_and_a_garbled_one_is_a_null(tmp_path, churn_schema):
    reference = synthetic.generate(3000, seed=1).assign(prediction=np.linspace(0.0, 0.5, 3000))
    current = synthetic.generate(3000, seed=2).assign(prediction=np.linspace(0.4, 0.9, 3000).astype(object))
    current.loc[0, "prediction"] = "n/a"
    reference.to_csv(tmp_path / "ref.csv", index=False)
    current.to_csv(tmp_path / "cur.csv", index=False)
    frame = drift.read_frame(tmp_path / "cur.csv", churn_schema)
    assert frame["prediction"].isna().sum() == 1 and frame["prediction"].dtype == "float64"
    out = tmp_path / "drift.json"
    args = [
        "--reference",
        str(tmp_path / "ref.csv"),
        "--current",
        str(tmp_path / "cur.csv"),
        "--json",
        str(out),
    ]
    assert drift.main(args) == 0
    assert "prediction" in json.loads(out.read_text())["drifted_features"]


def test_the_reference_against_itself_has_no_drift_at_all(reference, churn_schema):
    baseline = drift.Baseline.from_frame(reference, churn_schema)
    report = drift.compare(baseline, baseline.profile(reference))
    assert report.drifted_features == []
    assert max(f.psi for f in report.features.values()) == pytest.approx(0.0, abs=1e-12)
    assert min(f.p_value for f in report.features.values()) == pytest.approx(1.0)
    assert (report.model, report.reference_rows, report.current_rows) == ("customer-churn", N_ROWS, N_ROWS)
    assert {
        (name, f.kind, f.test) for name, f in report.features.items() if name in ("tenure_months", "contract")
    } == {
        ("tenure_months", "numeric", "ks"),
        ("contract", "categorical", "chi2"),
    }


def test_null_shares_are_reported_for_each_side(reference, churn_schema):
    with_nulls = reference.copy()
    with_nulls.loc[with_nulls.index[: N_ROWS // 10], "total_charges"] = np.nan
    current = with_nulls.copy()
    current.loc[current.index[: N_ROWS // 4], "total_charges"] = np.nan
    f = drift.detect(with_nulls, current, churn_schema).features["total_charges"]
    expected = (with_nulls["total_charges"].isna().mean(), current["total_charges"].isna().mean())
    assert (f.reference_null_share, f.current_null_share) == pytest.approx(expected)
    assert expected[0] < expected[1]


def test_a_single_current_row_is_compared_and_no_rows_are_refused(reference, churn_schema):
    baseline = drift.Baseline.from_frame(reference, churn_schema)
    assert drift.compare(baseline, baseline.profile(reference.head(1))).current_rows == 1
    with pytest.raises(ValueError, match=r"^current: no rows to compare with the reference$"):
        drift.compare(baseline, baseline.profile(reference.head(0)))


def test_a_profile_of_another_baseline_is_refused_naming_both(reference, fresh, churn_schema):
    one = drift.Baseline.from_frame(reference, churn_schema)
    other = drift.Baseline.from_frame(fresh, churn_schema)
    with pytest.raises(ValueError) as error:
        drift.compare(one, other.profile(fresh))
    assert (
        str(error.value) == f"profile made on baseline {other.fingerprint}, not this one ({one.fingerprint})"
    )


def test_a_feature_setting_one_threshold_keeps_the_callers_other():
    raw = RULE_SCHEMA.to_dict()
    own_thresholds = {"x": {"p_value": 0.001}, "z": {"psi": 0.3}}
    features = [
        {**f, "drift": own_thresholds[f["name"]]} if f["name"] in own_thresholds else f
        for f in raw["features"]
    ]
    own = schema.parse({**raw, "features": features})
    # only the features that set their own
    assert drift.thresholds(own, 0.2, 0.05) == {"x": (0.2, 0.001), "z": (0.3, 0.05)}
    rng = np.random.default_rng(9)
    report = drift.compare(
        *(lambda b: (b, b.profile(_sample(rng, 5_000, 0.3))))(
            drift.Baseline.from_frame(_sample(rng, 5_000), own)
        ),
        psi_threshold=0.2,
        p_value_threshold=0.05,
        schema=own,
    )
    x = report.features["x"]
    assert (x.psi_threshold, x.p_value_threshold) == (0.2, 0.001)
    assert (report.features["z"].psi_threshold, report.features["z"].p_value_threshold) == (0.3, 0.05)
    assert (report.features["k"].psi_threshold, report.features["k"].p_value_threshold) == (0.2, 0.05)


CATEGORY = schema.parse(
    {
        "name": "category",
        "entity_id": "id",
        "target": {"column": "y", "positive": 1},
        "features": [{"name": "c", "type": "string", "values": ["a", "b", "c"], "nullable": True}],
    }
)


def _scipy_chi2(reference: pd.Series, current: pd.Series) -> tuple[float, float]:
    """The chi-square test of homogeneity computed by scipy on the two samples' category counts."""
    counts = pd.DataFrame(
        {"ref": reference.value_counts(dropna=False), "cur": current.value_counts(dropna=False)}
    ).fillna(0)
    result = stats.chi2_contingency(counts.to_numpy().T, correction=False)
    return result.statistic, result.pvalue


@pytest.mark.parametrize(
    ("reference", "current"),
    [
        (["a"] * 50 + ["b"] * 50, ["a"] * 60 + ["b"] * 40),  # two buckets: a 2x2 table, no Yates correction
        (["a"] * 50 + ["b"] * 50, ["a"] * 45 + ["b"] * 54 + ["c"]),  # a category seen once
    ],
    ids=["two-categories", "one-seen-once"],
)
def test_the_categorical_test_is_scipys_chi_square_of_homogeneity(reference, current):
    ref, cur = pd.DataFrame({"c": reference}), pd.DataFrame({"c": current})
    f = drift.detect(ref, cur, CATEGORY).features["c"]
    assert_allclose([f.statistic, f.p_value], _scipy_chi2(ref["c"], cur["c"]))


def test_a_category_constant_on_both_sides_has_not_moved():
    f = drift.detect(pd.DataFrame({"c": ["a"] * 30}), pd.DataFrame({"c": ["a"] * 20}), CATEGORY).features["c"]
    assert (f.statistic, f.p_value, f.drifted) == (0.0, 1.0, False)


def test_category_codes_that_look_like_numbers_stay_as_written(tmp_path):
    plans = schema.parse(
        {
            "name": "plans",
            "entity_id": "id",
            "target": {"column": "y", "positive": 1},
            "features": [{"name": "plan", "type": "string", "values": ["01", "02", "10"]}],
        }
    )
    (tmp_path / "p.csv").write_text("id,plan\n1,01\n2,02\n3,10\n")
    assert drift.read_frame(tmp_path / "p.csv", plans)["plan"].tolist() == ["01", "02", "10"]
