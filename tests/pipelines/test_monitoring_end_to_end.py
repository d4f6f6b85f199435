"""The monitoring pipeline's definition, run end to end by the local executor against moto.

An emulated account is staged as production leaves it: the contract's schema object, an
Approved model package whose drift baseline is the one EvaluateModel would have written,
a day of endpoint traffic in SageMaker's data-capture layout, ground truth for most of it
and the feature group's offline store. Each run executes the very definition JSON
production runs, and the tests read what a user's alarms and dashboards read: the metrics
in CloudWatch (namespace ``MLOps``, ``Model=customer-churn``).

Three runs: a day of traffic with planted data drift (over two instances, so every
sharded step deals its files out), a day drawn from the reference distribution, and a
group whose model nobody has approved yet.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import boto3
import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from model_code import metrics
from model_code.contract import rules, synthetic
from model_code.contract import schema as schema_mod
from model_code.monitoring import drift
from model_code.serving import inference
from model_code.training.artifact import ModelBundle
from model_code.training.evaluate import drift_baseline
from model_code.training.train import fit_model
from pipelines import monitoring, training
from pipelines.local import Execution, LocalExecutor

BUCKET = "e2e-artifacts"
REGION = "eu-west-1"
ROLE = "arn:aws:iam::123456789012:role/e2e-pipelines"
MODEL = "customer-churn"
# The stack the pipeline is built for, and the production variant whose captured traffic it reads.
STACK = "dev"
VARIANT = "champion"
BASELINE_KEY = "models/customer-churn/v1/baseline.json"
# The champion was trained on 2026-01-01 (DataEnd); traffic and new records are from 2026-02-01.
TRAINING_DAY, TRAFFIC_DAY = "2026-01-01T00:00:00Z", "2026-02-01T00:00:00Z"
WINDOW = {"WindowEnd": "2026-02-02T00:00:00Z", "WindowHours": 24.0}
TRAFFIC_ROWS, LABELLED_ROWS, BATCH = 2000, 1500, 50
OFFLINE_STORE = "feature-store/123456789012/sagemaker/eu-west-1/offline-store/customer-churn-1767225600/data"


@dataclass(frozen=True)
class Champion:
    """What training left behind: the schema, the model, the rows it was trained on (as they were
    ingested), its drift baseline; and the monitoring pipeline's definition."""

    schema: schema_mod.Schema
    bundle: ModelBundle
    history: pd.DataFrame
    baseline: dict
    definition: str

    def answer(self, traffic: pd.DataFrame) -> list[dict]:
        """The model server's predictions for ``traffic``, as it returns them."""
        features = rules.coerce(traffic[self.schema.feature_names], self.schema)
        return inference.predict_fn(features, self.bundle)


@pytest.fixture(scope="module")
def champion() -> Champion:
    schema = schema_mod.load(schema_mod.EXAMPLE_SCHEMA)
    history = synthetic.generate(3000, seed=7, start=TRAINING_DAY)
    training_data = rules.coerce(history, schema)
    bundle = fit_model(training_data, schema, model_params={"n_estimators": 60}, random_state=0)
    definition = monitoring.get_pipeline(
        region=REGION, role_arn=ROLE, bucket=BUCKET, schema=schema, stack=STACK
    ).definition()
    # The baseline EvaluateModel registers: the training rows with the model's probabilities.
    baseline = drift_baseline(bundle, training_data).to_dict()
    return Champion(schema, bundle, history, baseline, definition)


# --- staging the account ------------------------------------------------------------------------


def capture_line(instances: pd.DataFrame, answers: list[dict], *, event_id: str, time: str) -> str:
    """One invocation as SageMaker data capture writes it: a JSON request of several customers
    (their id included, which the server ignores) and the server's JSON response."""

    def side(body: dict, mode: str) -> dict:
        return {
            "observedContentType": "application/json",
            "mode": mode,
            "data": json.dumps(body),
            "encoding": "JSON",
        }

    return json.dumps(
        {
            "captureData": {
                "endpointInput": side(
                    {"instances": json.loads(instances.to_json(orient="records"))}, "INPUT"
                ),
                "endpointOutput": side({"predictions": answers}, "OUTPUT"),
            },
            "eventMetadata": {"eventId": event_id, "inferenceTime": time},
            "eventVersion": "0",
        }
    )


def capture_files(
    traffic: pd.DataFrame, answers: list[dict], schema, variant: str = VARIANT
) -> dict[str, str]:
    """Traffic in requests of BATCH customers, each in the file of its inference hour:
    ``data-capture/<endpoint>/<variant>/yyyy/mm/dd/hh/*.jsonl``."""
    columns = [schema.entity_id, *schema.feature_names]
    files: dict[str, list[str]] = {}
    for first in range(0, len(traffic), BATCH):
        rows = traffic.iloc[first : first + BATCH]
        time = pd.Timestamp(rows["event_time"].iloc[0])
        key = f"data-capture/{MODEL}/{variant}/{time:%Y/%m/%d/%H}/capture-{time:%H}.jsonl"
        line = capture_line(
            rows[columns],
            answers[first : first + BATCH],
            event_id=f"event-{first}",
            time=rows["event_time"].iloc[0],
        )
        files.setdefault(key, []).append(line)
    return {key: "\n".join(lines) + "\n" for key, lines in files.items()}


def parquet(frame: pd.DataFrame) -> bytes:
    """Records as Feature Store's offline store writes them (its bookkeeping columns included)."""
    stored = frame.assign(write_time=pd.Timestamp(TRAFFIC_DAY), api_invocation_time=pd.Timestamp(TRAFFIC_DAY))
    buffer = io.BytesIO()
    stored.assign(is_deleted=False).to_parquet(buffer)
    return buffer.getvalue()


def stage(
    champion: Champion,
    traffic: pd.DataFrame,
    *,
    approved: bool = True,
    challenger_answers: list[dict] | None = None,
) -> tuple[boto3.Session, list[dict]]:
    """The account after training (``approved``: and after a reviewer approved the model) and a
    day of ``traffic``: its capture, labels for its first LABELLED_ROWS customers, and the day's
    records ingested into the offline store. Returns the boto3 session and the server's answers."""
    session = boto3.Session(region_name=REGION)
    s3, sagemaker = session.client("s3"), session.client("sagemaker")
    s3.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
    contract = training.schema_object(champion.schema)
    s3.put_object(Bucket=BUCKET, Key=contract.key, Body=contract.body)
    s3.put_object(Bucket=BUCKET, Key=BASELINE_KEY, Body=json.dumps(champion.baseline).encode())
    baseline = {"ContentType": "application/json", "S3Uri": f"s3://{BUCKET}/{BASELINE_KEY}"}
    sagemaker.create_model_package_group(ModelPackageGroupName=MODEL)
    sagemaker.create_model_package(
        ModelPackageGroupName=MODEL,
        ModelApprovalStatus="Approved" if approved else "PendingManualApproval",
        InferenceSpecification={
            "Containers": [{"Image": "123456789012.dkr.ecr.eu-west-1.amazonaws.com/mlops:1"}],
            "SupportedContentTypes": ["application/json", "text/csv"],
            "SupportedResponseMIMETypes": ["application/json"],
        },
        ModelMetrics={"ModelDataQuality": {"Statistics": baseline}},
        DriftCheckBaselines={"ModelDataQuality": {"Statistics": baseline}},
        CustomerMetadataProperties={"DataEnd": champion.history["event_time"].max()},
    )

    answers = champion.answer(traffic)
    # A shadow challenger is sent a copy of the same requests and captured beside the
    # champion: the production variant's run must count none of it. Unless told otherwise it
    # answers as the champion does.
    for variant, given in ((VARIANT, answers), ("challenger", challenger_answers or answers)):
        for key, body in capture_files(traffic, given, champion.schema, variant).items():
            s3.put_object(Bucket=BUCKET, Key=key, Body=body.encode())
    labels = traffic.iloc[:LABELLED_ROWS][["customer_id", "churned"]].set_axis(["id", "label"], axis=1)
    # Feedback also arrives for customers scored by another channel: not this endpoint's to count.
    labels = pd.concat([labels, pd.DataFrame({"id": ["W0000001", "W0000002"], "label": [1, 0]})])
    s3.put_object(
        Bucket=BUCKET, Key=f"ground-truth/{MODEL}/2026-02-01.csv", Body=labels.to_csv(index=False).encode()
    )

    # The training day's records (not new: the champion saw them) and the traffic day's, in two
    # hourly files, so each of two instances counts some.
    half = len(traffic) // 2
    store = {
        "year=2026/month=01/day=01/hour=00/training.parquet": champion.history,
        "year=2026/month=02/day=01/hour=00/morning.parquet": traffic.iloc[:half],
        "year=2026/month=02/day=01/hour=12/afternoon.parquet": traffic.iloc[half:],
    }
    for name, frame in store.items():
        s3.put_object(Bucket=BUCKET, Key=f"{OFFLINE_STORE}/{name}", Body=parquet(frame))
    return session, answers


def run(champion: Champion, work_dir, **parameters) -> Execution:
    executor = LocalExecutor(champion.definition, pipeline_name=f"{MODEL}-monitoring", work_dir=work_dir)
    return executor.start({**WINDOW, **parameters})


# --- reading CloudWatch back --------------------------------------------------------------------


def published(session) -> dict[tuple[str, str | None], float]:
    """Every MLOps metric of the model, by (metric name, Feature dimension or None), read back
    from CloudWatch; each was put exactly once in the run."""
    cloudwatch = session.client("cloudwatch")
    now = datetime.now(UTC)
    values = {}
    for page in cloudwatch.get_paginator("list_metrics").paginate(Namespace=metrics.NAMESPACE):
        for metric in page["Metrics"]:
            dims = {d["Name"]: d["Value"] for d in metric["Dimensions"]}
            assert dims.pop("Model") == MODEL and dims.pop("Stack") == STACK, metric
            # Drift and quality are the production variant's; the new-data count is the group's.
            assert dims.pop("Variant", VARIANT) == VARIANT and set(dims) <= {"Feature"}, metric
            [point] = cloudwatch.get_metric_statistics(
                Namespace=metrics.NAMESPACE,
                MetricName=metric["MetricName"],
                Dimensions=metric["Dimensions"],
                StartTime=now - timedelta(hours=1),
                EndTime=now + timedelta(hours=1),
                Period=7200,
                Statistics=["SampleCount", "Maximum"],
            )["Datapoints"]
            assert point["SampleCount"] == 1, metric
            values[metric["MetricName"], dims.get("Feature")] = point["Maximum"]
    return values


def drift_flags(values: dict[tuple[str, str | None], float]) -> dict[str, float]:
    return {feature: v for (name, feature), v in values.items() if name == "FeatureDrifted"}


def read_report(session, execution: Execution, step: str, name: str) -> dict:
    bucket, prefix = execution.step(step).outputs["report"][len("s3://") :].split("/", 1)
    body = session.client("s3").get_object(Bucket=bucket, Key=f"{prefix.rstrip('/')}/{name}")["Body"]
    return json.loads(body.read())


# --- a day with planted data drift, over two instances ------------------------------------------


@dataclass(frozen=True)
class DriftedDay:
    """The drifted day's traffic, the model's probabilities for it, and what the run published."""

    traffic: pd.DataFrame
    probabilities: np.ndarray
    execution: Execution
    published: dict[tuple[str, str | None], float]
    drift_report: dict


@pytest.fixture(scope="module")
def drifted_day(aws_module, champion, tmp_path_factory) -> DriftedDay:
    """One run over a day of drifted traffic; what it published is read back at once (other
    tests empty the emulator), so the drift, quality and new-data tests share the run."""
    traffic = synthetic.generate(TRAFFIC_ROWS, seed=11, data_drift=1.0, start=TRAFFIC_DAY, id_prefix="T")
    session, answers = stage(champion, traffic)
    execution = run(champion, tmp_path_factory.mktemp("runs"), ProcessingInstanceCount=2)
    assert execution.status == "Succeeded", execution.failure_reason
    return DriftedDay(
        traffic,
        np.array([a["probability"] for a in answers]),
        execution,
        published(session),
        read_report(session, execution, "CheckDrift", "drift.json"),
    )


def test_the_whole_pipeline_runs_sharded_over_two_instances(drifted_day):
    execution = drifted_day.execution
    # The three branches run side by side; within each, a step starts once its input is done.
    branches = [("ProfileTraffic", "CheckDrift"), ("MatchGroundTruth", "CheckQuality")]
    branches.append(("CountOfflineRecords", "CountNewData"))
    assert sorted(s.name for s in execution.steps) == sorted(
        [*(name for pair in branches for name in pair), "CompareShadow"]
    )
    for first, then in branches:
        assert execution.step(first).end <= execution.step(then).start
    assert drifted_day.drift_report["shards"] == ["algo-1", "algo-2"]
    # Every captured record was profiled once, whichever instance was dealt its file.
    assert drifted_day.published["CapturedRecordCount", None] == TRAFFIC_ROWS
    assert drifted_day.published["MalformedCaptureCount", None] == 0


def test_planted_drift_is_published_for_exactly_the_moved_features_and_the_prediction(drifted_day, champion):
    # The planted drift moves customers toward what the model learned means churn (month-to-
    # month contracts, fiber, short tenure, higher charges), so its probabilities move too: a
    # user wants the prediction flagged, since that is what the endpoint's consumers see.
    moved = {*synthetic.DATA_DRIFT_FEATURES, *synthetic.DATA_DRIFT_DERIVED, drift.PREDICTION_COLUMN}
    reference = np.mean([a["probability"] for a in champion.answer(champion.history)])
    assert drifted_day.probabilities.mean() > reference + 0.1

    flags = drift_flags(drifted_day.published)

    assert set(flags) == {*champion.schema.feature_names, drift.PREDICTION_COLUMN}
    assert {f for f, v in flags.items() if v == 1.0} == moved
    assert {f for f, v in flags.items() if v == 0.0} == set(flags) - moved


def test_the_drifted_feature_count_is_the_number_of_moved_columns(drifted_day):
    assert (
        drifted_day.published["DriftedFeatureCount", None]
        == len(synthetic.DATA_DRIFT_FEATURES) + len(synthetic.DATA_DRIFT_DERIVED) + 1
    )


def test_quality_is_published_from_the_ground_truth_of_the_captured_customers(drifted_day):
    labelled = slice(0, LABELLED_ROWS)
    expected_auc = roc_auc_score(
        drifted_day.traffic["churned"].iloc[labelled], drifted_day.probabilities[labelled]
    )

    assert drifted_day.published["LabelledCount", None] == LABELLED_ROWS
    assert drifted_day.published["AUC", None] == pytest.approx(expected_auc, rel=1e-9)
    assert {"F1", "Precision", "Recall", "Accuracy", "LogLoss"} <= {
        n for n, f in drifted_day.published if f is None
    }


def test_new_records_are_the_offline_store_records_after_the_champions_data_end(drifted_day):
    # The training day's 3000 records are the champion's own; the traffic day's are new.
    assert drifted_day.published["NewRecordCount", None] == TRAFFIC_ROWS


# --- a day like the reference ---------------------------------------------------------------------


def test_traffic_like_the_training_data_is_published_as_no_drift(aws, champion, tmp_path):
    traffic = synthetic.generate(TRAFFIC_ROWS, seed=12, start=TRAFFIC_DAY, id_prefix="T")
    session, _ = stage(champion, traffic)

    execution = run(champion, tmp_path)

    assert execution.status == "Succeeded", execution.failure_reason
    values = published(session)
    flags = drift_flags(values)
    assert set(flags) == {*champion.schema.feature_names, drift.PREDICTION_COLUMN}
    assert set(flags.values()) == {0.0}
    assert values["DriftedFeatureCount", None] == 0
    assert values["CapturedRecordCount", None] == TRAFFIC_ROWS


# --- no model to monitor --------------------------------------------------------------------------


def test_without_an_approved_model_the_run_fails_at_the_drift_step_naming_the_group(aws, champion, tmp_path):
    traffic = synthetic.generate(200, seed=13, start=TRAFFIC_DAY, id_prefix="T")
    session, _ = stage(champion, traffic, approved=False)  # registered, never approved

    execution = run(champion, tmp_path)

    assert execution.status == "Failed"
    # As on SageMaker, the drift branch stops while the independent branches still run.
    assert {s.name: s.status for s in execution.steps} == {
        "ProfileTraffic": "Failed",
        "MatchGroundTruth": "Succeeded",
        "CheckQuality": "Succeeded",
        "CompareShadow": "Succeeded",
        "CountOfflineRecords": "Succeeded",
        "CountNewData": "Succeeded",
    }
    assert execution.failure_reason == (
        f"drift-shard: model package group '{MODEL}' has no Approved model to monitor"
    )
    # No drift verdict at all, rather than a reassuring 0.
    assert not {name for name, _ in published(session)} & {"FeatureDrifted", "DriftedFeatureCount"}


# --- a shadow challenger beside the champion --------------------------------------------------------


def test_a_shadow_run_publishes_the_challenger_against_production_on_the_same_requests(
    aws, champion, tmp_path
):
    traffic = synthetic.generate(400, seed=14, start=TRAFFIC_DAY, id_prefix="T")
    # A challenger that learned from half the history: it disagrees with the champion on some.
    other = fit_model(
        rules.coerce(champion.history.iloc[:1500], champion.schema),
        champion.schema,
        model_params={"n_estimators": 10, "max_depth": 2},
        random_state=1,
    )
    features = rules.coerce(traffic[champion.schema.feature_names], champion.schema)
    challenger = inference.predict_fn(features, other)
    session, answers = stage(champion, traffic, challenger_answers=challenger)

    execution = run(champion, tmp_path, Variant="challenger")

    assert execution.status == "Succeeded", execution.failure_reason
    production_p = np.array([a["probability"] for a in answers])
    challenger_p = np.array([a["probability"] for a in challenger])
    labelled = slice(0, LABELLED_ROWS)  # all 400 are labelled (LABELLED_ROWS > 400)
    y = traffic["churned"].iloc[labelled]
    cloudwatch = session.client("cloudwatch")
    now = datetime.now(UTC)

    def value(name: str) -> float:
        [point] = cloudwatch.get_metric_statistics(
            Namespace=metrics.NAMESPACE,
            MetricName=name,
            Dimensions=[
                {"Name": "Model", "Value": MODEL},
                {"Name": "Variant", "Value": "challenger"},
                {"Name": "Stack", "Value": STACK},
            ],
            StartTime=now - timedelta(hours=1),
            EndTime=now + timedelta(hours=1),
            Period=7200,
            Statistics=["Maximum"],
        )["Datapoints"]
        return point["Maximum"]

    agreement = np.mean((production_p >= 0.5) == (challenger_p >= 0.5))
    assert 0 < agreement < 1  # the planted challenger really differs
    assert value("ShadowAgreementRate") == pytest.approx(agreement)
    assert value("ShadowProbabilityDifference") == pytest.approx(np.mean(np.abs(production_p - challenger_p)))
    assert value("ShadowChallengerAUC") == pytest.approx(roc_auc_score(y, challenger_p[labelled]))
    assert value("ShadowProductionAUC") == pytest.approx(roc_auc_score(y, production_p[labelled]))
    assert value("ShadowComparedCount") == len(traffic)


def test_the_production_variants_run_publishes_no_shadow_comparison(aws, champion, tmp_path):
    traffic = synthetic.generate(200, seed=15, start=TRAFFIC_DAY, id_prefix="T")
    session, _ = stage(champion, traffic)

    execution = run(champion, tmp_path)

    assert execution.status == "Succeeded", execution.failure_reason
    assert not {name for name, _ in published(session) if name.startswith("Shadow")}
