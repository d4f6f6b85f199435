"""The scenario's steps, each driven through boto3 against the emulator and read back from it.

A step that fails raises :class:`StepFailed` naming the step and the cause (a pipeline step's
``FailureReason`` where there is one). The run records seconds per phase and the summary the
command prints and writes as JSON.
"""

from __future__ import annotations

import io
import itertools
import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
from botocore.exceptions import ClientError

from infra.alarms import PIPELINE_PERIOD as ALARM_PERIOD
from localcloud.cli import namespaced
from localcloud.emulator import Emulator, authorisation
from localcloud.engine import ROOT, Engine
from localcloud.scenario.data import Prepared
from pipelines.local import warm

PROJECT = "mlops-platform"
PACKAGE_KEY = f"{PROJECT}:modelPackageArn"
SHADOW_KEY = f"{PROJECT}:shadowModelPackageArn"
SCHEMA_KEY = f"{PROJECT}:schemaPath"
STRATEGY_KEY = f"{PROJECT}:deploymentStrategy"
BATCH_ROWS = 10  # rows per InvokeEndpoint request
ROLLOUT_REQUESTS_PER_MINUTE = 10  # live traffic while a roll-out bakes, each virtual minute
SCHEDULE_MINUTE = 50  # of the hour the clock starts at (see Scenario.start)
# What the summary says each model version learned from (its EngineerFeatures' data_window.json).
WINDOW_KEYS = (
    "strategy",
    "source",
    "rows",
    "data_start",
    "data_end",
    "offline_rows",
    "records_reported",
    "records_waited_for",
    "seconds_waited",
)


class StepFailed(RuntimeError):
    def __init__(self, step: str, cause: str):
        super().__init__(f"step {step!r} failed: {cause}")
        self.step, self.cause = step, cause


@dataclass
class Scenario:
    """One run: ``Scenario(prepared, stack=...).run()`` then ``summary()``; ``stop()`` at the end."""

    prepared: Prepared
    stack: str = "local"
    port: int = 0
    state_dir: Path | None = None
    overrides: dict[str, Any] = field(default_factory=dict)  # stack config: {"key": value}
    on_step: Callable[[str], None] = lambda name: None
    seconds: dict[str, float] = field(default_factory=dict)
    phases: list[dict[str, Any]] = field(default_factory=list)
    models: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    quality: dict[str, Any] = field(default_factory=dict)  # published from ground truth
    rollout: dict[str, Any] = field(default_factory=dict)
    feedback_records: int = 0  # labelled outcomes of the drifted traffic, ingested as records

    # -- plumbing ------------------------------------------------------------------------------
    @contextmanager
    def step(self, name: str) -> Iterator[None]:
        self.on_step(name)
        started = time.perf_counter()
        try:
            yield
        except StepFailed:
            raise
        except Exception as error:  # every failure stops the run, named
            raise StepFailed(name, f"{type(error).__name__}: {error}") from error
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - started

    def client(self, service: str):
        return self.emulator.client(service)

    def _deploy(self, package: str | None = None, shadow: str | None = None):
        overrides = namespaced(self.overrides, PROJECT)
        overrides |= {PACKAGE_KEY: package} if package else {}
        overrides |= {SHADOW_KEY: shadow} if shadow else {}
        # The stack's data contract is the scenario's (its feature group, rules and pipelines).
        path = self.prepared.schema_path.resolve()
        overrides[SCHEMA_KEY] = str(path.relative_to(ROOT) if path.is_relative_to(ROOT) else path)
        engine = Engine(
            self.stack,
            self.emulator.endpoint_url,
            state_dir=self.state_dir,
            overrides=overrides,
            fresh_state=package is None,
        )
        self.region = engine.region
        self.strategy = engine.config.get(STRATEGY_KEY)
        return engine.up()

    def _wait(self, step: str, pipeline: str, since: int = 0) -> list[dict[str, Any]]:
        """Executions of ``pipeline`` after the first ``since``, once all have ended; a failed
        one stops the run with its failing step's reason."""
        self.emulator.behaviours.wait_for_executions(600)
        sm = self.client("sagemaker")
        found = sm.list_pipeline_executions(PipelineName=pipeline, SortOrder="Ascending")
        runs = found["PipelineExecutionSummaries"][since:]
        for run in runs:
            described = sm.describe_pipeline_execution(PipelineExecutionArn=run["PipelineExecutionArn"])
            run["Status"] = described["PipelineExecutionStatus"]
            run["Parameters"] = {
                p["Name"]: p["Value"]
                for p in sm.list_pipeline_parameters_for_execution(
                    PipelineExecutionArn=run["PipelineExecutionArn"]
                )["PipelineParameters"]
            }
            steps = sm.list_pipeline_execution_steps(PipelineExecutionArn=run["PipelineExecutionArn"])
            failed = [s for s in steps["PipelineExecutionSteps"] if s["StepStatus"] == "Failed"]
            run["FailedStep"] = failed[0] if failed else None
        return runs

    def _executions(self, pipeline: str) -> int:
        found = self.client("sagemaker").list_pipeline_executions(PipelineName=pipeline)
        return len(found["PipelineExecutionSummaries"])

    # -- the steps -----------------------------------------------------------------------------
    def start(self) -> None:
        with self.step("start emulator"):
            schema, frame = self.prepared.schema, self.prepared.training
            start = datetime.now(UTC)
            if schema.event_time and schema.event_time in frame:
                newest = pd.to_datetime(frame[schema.event_time], errors="coerce", utc=True).max()
                if pd.notna(newest):  # the clock starts after the data, as a live system would
                    start = (newest + timedelta(days=1)).to_pydatetime()
            # The stack is created, and its hourly monitoring schedule fires, at SCHEDULE_MINUTE:
            # a run publishes late in an alarm period (hours), which closes before the next run.
            start = start.replace(minute=SCHEDULE_MINUTE, second=0, microsecond=0)
            self._clock_start = start
            self.emulator = Emulator(port=self.port, clock_start=start).start()
            # moto's backends live as long as the process: an earlier run's resources go first.
            self.emulator.reset()
            warm.prestart()  # the steps' fork server imports its libraries while the stack deploys

    def deploy(self) -> None:
        with self.step("deploy stack (no model)"):
            result = self._deploy()
            self.outputs = result.outputs
            self.resources = sum(1 for op in result.operations if op.op != "delete")
            self.pipelines = {k: v.rsplit("/", 1)[-1] for k, v in self.outputs["pipelines"].items()}

    def ingest(self) -> None:
        with self.step("upload data and ingest"):
            body = self.prepared.training.to_csv(index=False).encode()
            key = f"raw/{self.prepared.schema.name}/data.csv"
            self.client("s3").put_object(Bucket=self.outputs["bucket"], Key=key, Body=body)
            (run,) = self._wait("ingest", self.pipelines["ingestion"]) or [None]
            if run is None:
                raise StepFailed("upload data and ingest", "the upload started no ingestion pipeline")
            if run["Status"] != "Succeeded":
                raise StepFailed("upload data and ingest", _reason(run))
            quarantined = self._count_rows(f"quarantine/{self.prepared.schema.name}/")
            # Traffic rows were held out before upload, clean by the split's contract check.
            self.data = {
                "rows_in": self.prepared.rows_in,
                "rows_accepted": self.prepared.rows_in - quarantined,
                "rows_quarantined": quarantined,
                # Into the feature group: the uploaded rows the quarantine kept out of it left out.
                "rows_ingested": len(self.prepared.training) - quarantined,
            }

    def _feed_back(self, step: str, traffic: pd.DataFrame, tag: str) -> None:
        """The labelled outcomes of ``traffic``, served now, arrive as new records: a CSV under
        raw/ (event time: the virtual now), validated and ingested into the feature group by the
        ingestion pipeline, as a real feedback feed would deliver them."""
        schema = self.prepared.schema
        records = traffic.copy()
        if schema.event_time:
            records[schema.event_time] = self.emulator.behaviours.clock.now().strftime("%Y-%m-%dT%H:%M:%SZ")
        before = self._executions(self.pipelines["ingestion"])
        self.client("s3").put_object(
            Bucket=self.outputs["bucket"],
            Key=f"raw/{schema.name}/feedback/{tag}.csv",
            Body=records.to_csv(index=False).encode(),
        )
        (run,) = self._wait(step, self.pipelines["ingestion"], before) or [None]
        if run is None:
            raise StepFailed(step, "the feedback upload started no ingestion pipeline")
        if run["Status"] != "Succeeded":
            raise StepFailed(step, _reason(run))
        self.feedback_records += len(records)

    def _count_rows(self, prefix: str) -> int:
        s3, rows = self.client("s3"), 0
        for obj in s3.list_objects_v2(Bucket=self.outputs["bucket"], Prefix=prefix).get("Contents", []):
            text = s3.get_object(Bucket=self.outputs["bucket"], Key=obj["Key"])["Body"].read().decode()
            rows += max(0, len(pd.read_csv(io.StringIO(text))) if text.strip() else 0)
        return rows

    def train(self, reason: str = "manual") -> None:
        with self.step("train (manual)"):
            before = self._executions(self.pipelines["training"])
            self.client("sagemaker").start_pipeline_execution(
                PipelineName=self.pipelines["training"],
                PipelineParameters=[{"Name": "TriggerReason", "Value": reason}],
            )
            (run,) = self._wait("train", self.pipelines["training"], before)
            if run["Status"] != "Succeeded":
                raise StepFailed("train (manual)", _reason(run))
            self.champion = self._newest_package()
            self._approve(self.champion, self._data_window(run))

    def _newest_package(self) -> dict[str, Any]:
        sm = self.client("sagemaker")
        found = sm.list_model_packages(
            ModelPackageGroupName=self.outputs["modelPackageGroup"],
            SortBy="CreationTime",
            SortOrder="Descending",
        )
        return found["ModelPackageSummaryList"][0] if found["ModelPackageSummaryList"] else {}

    def _approve(self, package: dict[str, Any], window: dict[str, Any]) -> None:
        sm = self.client("sagemaker")
        sm.update_model_package(ModelPackageArn=package["ModelPackageArn"], ModelApprovalStatus="Approved")
        described = sm.describe_model_package(ModelPackageName=package["ModelPackageArn"])
        self.models.append(
            {
                "version": described["ModelPackageVersion"],
                "auc": self._auc(described),
                "approval_status": described["ModelApprovalStatus"],
                "data_window": window,
            }
        )

    def _data_window(self, run: dict[str, Any]) -> dict[str, Any]:
        """What a training run learned from, as its EngineerFeatures job wrote it (data_window.json):
        strategy, rows, and the event-time window, read back through the job's own output."""
        sm = self.client("sagemaker")
        steps = sm.list_pipeline_execution_steps(PipelineExecutionArn=run["PipelineExecutionArn"])
        (step,) = [s for s in steps["PipelineExecutionSteps"] if s["StepName"] == "EngineerFeatures"]
        job = sm.describe_processing_job(
            ProcessingJobName=step["Metadata"]["ProcessingJob"]["Arn"].rsplit("/", 1)[-1]
        )
        (output,) = [o for o in job["ProcessingOutputConfig"]["Outputs"] if o["OutputName"] == "window"]
        bucket, _, prefix = output["S3Output"]["S3Uri"].removeprefix("s3://").partition("/")
        body = self.client("s3").get_object(Bucket=bucket, Key=f"{prefix.rstrip('/')}/data_window.json")[
            "Body"
        ]
        window = json.loads(body.read())
        return {k: window.get(k) for k in WINDOW_KEYS}

    def _auc(self, described: dict[str, Any]) -> float | None:
        uri = described.get("ModelMetrics", {}).get("ModelQuality", {}).get("Statistics", {}).get("S3Uri")
        if not uri:
            return None
        bucket, _, key = uri.removeprefix("s3://").partition("/")
        report = json.loads(self.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read())
        return _find(report, "auc")

    def promote(self, name: str = "deploy with the model", shadow: dict[str, Any] | None = None) -> None:
        """Deploy the stack serving the champion (and ``shadow`` as its shadow challenger).

        When an endpoint already serves, live traffic keeps coming while the roll-out bakes on
        the virtual clock, so its rollback alarms judge real requests; a roll-out the alarms
        stop leaves the endpoint on its old configuration, which is reported, not failed.
        """
        with self.step(name):
            serving = bool(self.outputs.get("endpointName")) and self._endpoint_exists()
            self._rollout_errors = 0
            with self._live_traffic() if serving else nullcontext():
                result = self._deploy(
                    self.champion["ModelPackageArn"], shadow["ModelPackageArn"] if shadow else None
                )
            self.outputs = result.outputs
            endpoint = self.client("sagemaker").describe_endpoint(EndpointName=self.outputs["endpointName"])
            if endpoint["EndpointStatus"] != "InService":
                raise StepFailed(
                    name,
                    f"endpoint {endpoint['EndpointName']} is {endpoint['EndpointStatus']}: "
                    f"{endpoint.get('FailureReason', '')}",
                )
            stayed = endpoint["EndpointConfigName"] != self.outputs["endpointConfigName"]
            reason = endpoint.get("FailureReason", "") if stayed else ""
            # The alarms stopped a roll-out, or the new fleet never started (its health check).
            outcome = "completed" if not stayed else "rolled back" if "rolled back" in reason else "failed"
            self.rollout = {
                "strategy": self.strategy,
                "outcome": outcome,
                "reason": reason,
                "errors_during_rollout": self._rollout_errors,
            }
            if stayed:
                self.notes.append(f"the roll-out {outcome}: {reason}")

    def _endpoint_exists(self) -> bool:
        found = self.client("sagemaker").list_endpoints(NameContains=self.outputs["endpointName"])
        return any(e["EndpointName"] == self.outputs["endpointName"] for e in found["Endpoints"])

    @contextmanager
    def _live_traffic(self) -> Iterator[None]:
        """Requests every virtual minute (held-out rows, cycled), as traffic keeps coming in production."""
        rows = self.prepared.traffic
        starts = itertools.cycle(range(0, len(rows), BATCH_ROWS))

        def each_minute(_now: datetime) -> None:
            for _ in range(ROLLOUT_REQUESTS_PER_MINUTE):
                first = next(starts)
                try:
                    self._invoke(rows.iloc[first : first + BATCH_ROWS], f"rollout-{first}")
                except ClientError:  # a failing variant's 5xx: what the rollback alarms watch
                    self._rollout_errors += 1

        clock = self.emulator.behaviours.clock
        clock.subscribe(each_minute)
        try:
            yield
        finally:
            clock.unsubscribe(each_minute)

    def _invoke(self, rows: pd.DataFrame, inference_id: str) -> None:
        """One InvokeEndpoint with ``rows`` as JSON instances carrying the entity id, so the
        captured predictions join the ground truth fed back later."""
        schema = self.prepared.schema
        columns = [schema.entity_id, *(f.name for f in schema.features)]
        instances = json.loads(rows[columns].to_json(orient="records"))
        self.client("sagemaker-runtime").invoke_endpoint(
            EndpointName=self.outputs["endpointName"],
            Body=json.dumps({"instances": instances}).encode(),
            ContentType="application/json",
            InferenceId=inference_id,
        )

    def _send(self, traffic: pd.DataFrame, tag: str) -> int:
        """``traffic`` in requests of ``BATCH_ROWS`` rows; how many requests."""
        starts = range(0, len(traffic), BATCH_ROWS)
        for first in starts:
            self._invoke(traffic.iloc[first : first + BATCH_ROWS], f"{tag}-{first}")
        return len(starts)

    def _monitor(self, name: str, *, by_hand: bool, alarms: bool = True) -> list[dict[str, Any]]:
        """Monitoring runs, started by hand or by the hourly schedule; with ``alarms``, until
        the metrics they published fall in a closed alarm period. A failed run stops the scenario."""
        before = self._executions(self.pipelines["monitoring"])
        behaviours = self.emulator.behaviours
        if by_hand:  # what each monitoring schedule (one per variant) starts, started now
            scheduler = self.client("scheduler")
            names = scheduler.list_schedules(NamePrefix=f"{self.outputs['endpointName']}-monitoring")
            for listed in names["Schedules"]:
                target = scheduler.get_schedule(Name=listed["Name"])["Target"]
                parameters = target.get("SageMakerPipelineParameters", {}).get("PipelineParameterList", [])
                self.client("sagemaker").start_pipeline_execution(
                    PipelineName=target["Arn"].rsplit("/", 1)[-1], PipelineParameters=parameters
                )
        else:  # to the hourly schedule's next run: at SCHEDULE_MINUTE, or an hour on (another schedule)
            behaviours.advance(
                (SCHEDULE_MINUTE * 60 - behaviours.clock.now().timestamp() % 3600) % 3600 or 3600
            )
            if self._executions(self.pipelines["monitoring"]) == before:
                behaviours.advance(3600)
        runs = self._wait(name, self.pipelines["monitoring"], before)
        if not runs:
            raise StepFailed(name, "the monitoring schedule started no monitoring run")
        if alarms:
            # The pipeline alarms evaluate whole periods (an hour): move past the end of the one
            # the metrics were published in (the schedule may start another run meanwhile).
            now = behaviours.clock.now().timestamp()
            behaviours.advance(ALARM_PERIOD - now % ALARM_PERIOD + 60)
            runs += self._wait(name, self.pipelines["monitoring"], before + len(runs))
        failed = [r for r in runs if r["Status"] != "Succeeded"]
        if failed:
            raise StepFailed(name, _reason(failed[0]))
        return runs

    def serve(self, name: str, traffic: pd.DataFrame, *, feed_back: bool = False) -> dict[str, Any]:
        """Send ``traffic``, let the monitoring schedule run, read the drift alarms back; with
        ``feed_back``, the traffic's labelled outcomes are ingested as new records first."""
        with self.step(name):
            schema = self.prepared.schema
            tag = f"phase{len(self.phases) + 1}"
            requests = self._send(traffic, tag)
            if feed_back:
                self._feed_back(name, traffic, tag)
            training_before = self._executions(self.pipelines["training"])
            self._monitor(name, by_hand=False)
            alarms = self.client("cloudwatch").describe_alarms(
                AlarmNamePrefix=f"{schema.name}-{self.stack}-drift-"
            )
            drifted = sorted(
                a["AlarmName"].rsplit("-drift-", 1)[-1]
                for a in alarms["MetricAlarms"]
                if a["StateValue"] == "ALARM"
            )
            retraining = self._wait(name, self.pipelines["training"], training_before)
            phase = {
                "name": name,
                "requests": requests,
                "drift_alarm": bool(drifted),
                "drifted_features": drifted,
                "retraining_started": bool(retraining),
                "retraining_reasons": [r["Parameters"].get("TriggerReason") for r in retraining],
            }
            self.phases.append(phase)
            self._retraining = retraining
            return phase

    def retrain_and_roll_out(self) -> None:
        with self.step("retrain on drift and roll out"):
            if not self._retraining:
                self.notes.append("no retraining started: nothing to roll out")
                return
            # Alarms firing together start several runs; the program's guard stops all but the
            # first (infra/functions/retrain_guard.py): the one that ran is the one not stopped.
            ran = [r for r in self._retraining if r["Status"] != "Stopped"]
            self.notes.append(
                f"retraining: {len(self._retraining)} started by alarms, {len(ran)} ran "
                f"(TriggerReason {', '.join(r['Parameters'].get('TriggerReason', '?') for r in ran)})"
            )
            if not ran:
                raise StepFailed("retrain on drift and roll out", "every retraining run was stopped")
            run = ran[0]
            if run["Status"] != "Succeeded":
                self.notes.append(f"retrained version rejected: {_reason(run)}")
                return
            challenger = self._newest_package()
            self._approve(challenger, self._data_window(run))
        if self.strategy == "shadow":  # the challenger answers nobody, beside the champion
            self.promote("roll out the retrained model (shadow)", shadow=challenger)
        else:
            self.champion = challenger
            self.promote("roll out the retrained model")

    def feedback(self) -> None:
        """Held-out traffic on the endpoint as it now serves, then its ground truth: quality (and,
        with a shadow variant, the comparison) published, and read back from CloudWatch."""
        with self.step("ground truth and quality"):
            schema = self.prepared.schema
            traffic = self.prepared.traffic
            self._send(traffic, "feedback")
            labels = pd.DataFrame({"id": traffic[schema.entity_id], "label": traffic[schema.target.column]})
            key = f"ground-truth/{schema.name}/labels.csv"
            self.client("s3").put_object(
                Bucket=self.outputs["bucket"], Key=key, Body=labels.to_csv(index=False).encode()
            )
            # Quality is read back from CloudWatch: no alarm needs to judge it.
            self._monitor("ground truth and quality", by_hand=True, alarms=False)
            # The quality job scores each id's latest prediction: these held-out rows, as now served.
            self.quality = {
                "auc": self._published("AUC"),
                "labelled": self._published("LabelledCount"),
                "held_out_rows": len(traffic),
            }
            if self.strategy == "shadow":
                self.quality["shadow"] = {
                    name: self._published(metric)
                    for name, metric in (
                        ("agreement_rate", "ShadowAgreementRate"),
                        ("challenger_auc", "ShadowChallengerAUC"),
                        ("production_auc", "ShadowProductionAUC"),
                        ("compared", "ShadowComparedCount"),
                    )
                }

    def draw_dashboard(self, folder: Path) -> tuple[Path, Path]:
        """The stack's deployed CloudWatch dashboard drawn from the emulator's metrics (as
        ``mlops dashboard`` draws it): PNG and HTML in ``folder``."""
        from mlops.console.dashboard import read_panels, serving_line
        from mlops.console.render_dashboard import write_html, write_png

        with self.step("draw the dashboard"):
            name = self.outputs["endpointName"]
            clock = self.emulator.behaviours.clock
            # From the clock's start: the stack published nothing before (and the emulator's
            # GetMetricData walks every period of the range).
            _, panels = read_panels(self.emulator.session(), name, now=clock.now(), since=self._clock_start)
            folder.mkdir(parents=True, exist_ok=True)
            title = f"{name} ({self.region}) at {clock.now():%Y-%m-%d %H:%M} UTC, the local cloud's clock"
            serving = serving_line(self.emulator.session(), name)
            return write_png(panels, folder / "dashboard.png", title, serving), write_html(
                panels, folder / "dashboard.html", title, serving
            )

    def _published(self, metric: str) -> float | None:
        """The newest value of a monitoring metric of this stack, as CloudWatch holds it."""
        cloudwatch = self.client("cloudwatch")
        found = [
            m
            for m in cloudwatch.list_metrics(MetricName=metric)["Metrics"]
            if {"Name": "Stack", "Value": self.stack} in m["Dimensions"]
        ]
        now = self.emulator.behaviours.clock.now()
        values = []
        for m in found:
            answer = cloudwatch.get_metric_statistics(
                Namespace=m["Namespace"],
                MetricName=metric,
                Dimensions=m["Dimensions"],
                StartTime=now - timedelta(days=2),
                EndTime=now + timedelta(hours=1),
                Period=60,
                Statistics=["Maximum"],
            )
            values += [(p["Timestamp"], p["Maximum"]) for p in answer["Datapoints"]]
        return max(values)[1] if values else None

    def endpoint(self) -> dict[str, Any]:
        sm = self.client("sagemaker")
        described = sm.describe_endpoint(EndpointName=self.outputs["endpointName"])
        config = sm.describe_endpoint_config(EndpointConfigName=described["EndpointConfigName"])
        versions = {}
        for variant in config["ProductionVariants"] + config.get("ShadowProductionVariants", []):
            model = sm.describe_model(ModelName=variant["ModelName"])
            package = (model.get("PrimaryContainer") or model["Containers"][0]).get("ModelPackageName", "")
            versions[variant["VariantName"]] = (
                int(package.rsplit("/", 1)[-1]) if package[-1:].isdigit() else None
            )
        return {
            "name": described["EndpointName"],
            "strategy": self.outputs.get("endpointStatus", "").rsplit("(", 1)[-1].rstrip(")"),
            "variants": [
                {
                    "name": v["VariantName"],
                    "model_version": versions.get(v["VariantName"]),
                    "weight": v.get("CurrentWeight", v.get("DesiredWeight")),
                }
                for v in described["ProductionVariants"]
            ]
            + [  # a shadow variant answers nobody: it has no weight, only a sampling share
                {"name": v["VariantName"], "model_version": versions.get(v["VariantName"]), "shadow": True}
                for v in config.get("ShadowProductionVariants", [])
            ],
        }

    def run(self) -> dict[str, Any]:
        started = time.perf_counter()
        self.start()
        self.deploy()
        self.ingest()
        self.train()
        self.promote()
        self.serve("phase 1: held-out traffic", self.prepared.traffic)
        self.serve(
            "phase 2: drifted traffic",
            self.prepared.drifted,
            feed_back=True,
        )
        self.retrain_and_roll_out()
        self.feedback()
        return self.summary(time.perf_counter() - started)

    def retraining(self) -> dict[str, Any]:
        """Training runs the stack's triggers started (every run but the first, by hand), by
        ``TriggerReason``, read back from the pipeline's executions: started and stopped."""
        runs = self._wait("summary", self.pipelines["training"], 1)
        started: dict[str, int] = {}
        stopped: dict[str, int] = {}
        for run in runs:
            reason = run["Parameters"].get("TriggerReason", "?")
            started[reason] = started.get(reason, 0) + 1
            if run["Status"] == "Stopped":
                stopped[reason] = stopped.get(reason, 0) + 1
        return {
            "started_by_reason": started,
            "stopped_by_reason": stopped,
            "once_per_reason": all(n == 1 for n in started.values()),
        }

    def summary(self, seconds: float) -> dict[str, Any]:
        windows = [
            tuple(m["data_window"].get(k) for k in ("rows", "data_start", "data_end")) for m in self.models
        ]
        return {
            "stack": self.stack,
            "region": self.region,
            "endpoint_url": self.emulator.endpoint_url,
            "resources": self.resources,
            "data": {**self.data, "feedback_records": self.feedback_records},
            "models": self.models,
            "windows_differ": len(windows) > 1 and len(set(windows)) == len(windows),
            "retraining": self.retraining(),
            "phases": [
                {
                    k: p[k]
                    for k in ("name", "requests", "drift_alarm", "drifted_features", "retraining_started")
                }
                for p in self.phases
            ],
            "endpoint": self.endpoint(),
            "rollout": self.rollout,
            "quality": self.quality,
            # Every request of the run, authorised as IAM would (localcloud/emulator/authorisation.py).
            "iam": authorisation.LEDGER.report(),
            "seconds": round(seconds, 2),
            "seconds_by_step": {name: round(value, 2) for name, value in self.seconds.items()},
        }

    def stop(self) -> None:
        if getattr(self, "emulator", None) is not None:
            self.emulator.stop()


def _reason(run: dict[str, Any]) -> str:
    failed = run.get("FailedStep")
    if failed:
        return f"pipeline step {failed['StepName']}: {failed.get('FailureReason', 'no reason given')}"
    return f"execution {run['PipelineExecutionArn']} ended {run.get('Status')}"


def _find(report: Any, key: str) -> float | None:
    """The first number under ``key`` anywhere in a JSON report."""
    if isinstance(report, dict):
        for k, v in report.items():
            if k.lower() == key and isinstance(v, int | float):
                return float(v)
            if k.lower() == key and isinstance(v, dict) and isinstance(v.get("value"), int | float):
                return float(v["value"])  # the evaluation report's {"auc": {"value": ...}}
            if (found := _find(v, key)) is not None:
                return found
    if isinstance(report, list):
        for v in report:
            if (found := _find(v, key)) is not None:
                return found
    return None
