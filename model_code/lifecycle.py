"""``mlops local``: the model lifecycle on this machine, step by step, with a summary.

Each step runs the same container entry point SageMaker runs, against a folder laid out
like the container's ``/opt/ml``, so what this shows is what production runs::

    generate ─► ValidateData ─► split ─► TrainModel ─► EvaluateModel ─► serve (HTTP)
                                                                           │
             ground truth ─► CheckQuality ◄─ captured traffic ─► CheckDrift

The traffic sent to the model is drawn with planted data and concept drift, so the
monitoring steps have something to find.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
from rich.console import Console
from rich.table import Table

from model_code.contract import schema as schema_mod
from model_code.contract import synthetic
from model_code.monitoring import drift, quality
from model_code.training.tracking import state_dir


@dataclass
class StepRecord:
    name: str
    seconds: float
    outcome: str
    details: dict[str, Any] = field(default_factory=dict)


class Lifecycle:
    """Runs the steps in order under ``work_dir``, recording each for the summary."""

    def __init__(self, work_dir: Path, *, rows: int, seed: int, console: Console):
        self.work = work_dir
        self.rows = rows
        self.seed = seed
        self.console = console
        self.steps: list[StepRecord] = []
        self.schema = schema_mod.load(schema_mod.EXAMPLE_SCHEMA)

    def _step(self, name: str, fn, *args) -> Any:
        self.console.print(f"[bold cyan]▶ {name}[/]")
        start = time.perf_counter()
        outcome, details = fn(*args)
        self.steps.append(StepRecord(name, time.perf_counter() - start, outcome, details))
        self.console.print(f"  {outcome}")
        return details

    def show(self, path: Path) -> str:
        """A path as short as it can be shown: relative to the working directory when inside it."""
        try:
            return str(path.resolve().relative_to(Path.cwd()))
        except ValueError:
            return str(path)

    def path(self, *parts: str) -> Path:
        p = self.work.joinpath(*parts)
        p.mkdir(parents=True, exist_ok=True)
        return p

    # -- steps -------------------------------------------------------------------------
    def generate(self) -> tuple[str, dict]:
        raw = self.path("raw")
        # 2% of rows break the contract, to show the quarantine at work.
        synthetic.generate(self.rows, seed=self.seed, dirty=0.02).to_csv(raw / "customers.csv", index=False)
        return f"{self.rows} customers written to {self.show(raw)}", {"rows": self.rows}

    def validate(self) -> tuple[str, dict]:
        from model_code.contract import validate

        out = self.path("validate")
        code = validate.main([
            "--input", str(self.work / "raw"),
            "--accepted-dir", str(out / "accepted"),
            "--quarantine-dir", str(out / "quarantine"),
            "--report-dir", str(out / "report"),
        ])  # fmt: skip
        report = json.loads((out / "report" / "validation.json").read_text())
        if code:
            raise RuntimeError(f"ValidateData failed: {report}")
        outcome = (
            f"{report['rows_in']} in = {report['rows_accepted']} accepted + "
            f"{report['rows_quarantined']} quarantined ({report['quarantined_share']:.1%})"
        )
        return outcome, report

    def split(self) -> tuple[str, dict]:
        from sklearn.model_selection import train_test_split

        frame = schema_mod.read_csv(self.work / "validate" / "accepted" / "accepted.csv", self.schema)
        labels = self.schema.is_positive(frame[self.schema.target.column])
        train, test = train_test_split(frame, test_size=0.25, random_state=self.seed, stratify=labels)
        train.to_csv(self.path("train") / "train.csv", index=False)
        test.to_csv(self.path("test") / "test.csv", index=False)
        return f"{len(train)} rows to train, {len(test)} held out", {"train": len(train), "test": len(test)}

    def train(self) -> tuple[str, dict]:
        from model_code.training import train

        code = train.main([
            "--train", str(self.work / "train"),
            "--model-dir", str(self.work / "model"),
            "--selection", "univariate", "--n-features", "12",
        ])  # fmt: skip
        if code:
            raise RuntimeError("TrainModel failed")
        chosen = json.loads((self.work / "model" / "features.json").read_text())
        model = chosen["model"]
        outcome = (
            f"{model['model_type']} chosen by cross-validation (auc {model['cv_auc']:.3f}); "
            f"{len(chosen['selected'])} features kept ({chosen['method']}); model in {self.show(self.work / 'model')}"
        )
        return outcome, chosen

    def evaluate(self) -> tuple[str, dict]:
        from model_code.training import evaluate

        out = self.path("evaluation")
        code = evaluate.main([
            "--model-dir", str(self.work / "model"),
            "--test-dir", str(self.work / "test"),
            "--output-dir", str(out),
            "--min-auc", "0.7",
        ])  # fmt: skip
        if code:
            raise RuntimeError("EvaluateModel failed")
        report = json.loads((out / "evaluation.json").read_text())
        m = report["binary_classification_metrics"]
        decision = "passed" if report["decision"]["passed"] else "failed"
        outcome = f"AUC {m['auc']['value']:.3f}, F1 {m['f1']['value']:.3f}; quality gate {decision}"
        return outcome, report

    def serve(self) -> tuple[str, dict]:
        """Serve the model on 127.0.0.1 and send it drifted traffic, capturing each call."""
        from model_code.serving import serve

        traffic = synthetic.generate(
            1500,
            seed=self.seed + 1,
            data_drift=0.7,
            concept_drift=0.8,
            start="2026-02-01T00:00:00Z",
            id_prefix="T",
        )
        features = self.schema.feature_names
        statuses: dict[int, int] = {}
        captured = []
        with serve.create_server(str(self.work / "model"), "127.0.0.1", 0) as server:
            server.start()
            url = f"http://127.0.0.1:{server.port}"
            status, _ = _http(f"{url}/ping")
            statuses[status] = statuses.get(status, 0) + 1
            for start in range(0, len(traffic), 100):
                batch = traffic.iloc[start : start + 100]
                status, reply = _http(
                    f"{url}/invocations",
                    json.dumps({"instances": _records(batch[features])}),
                    "application/json",
                )
                statuses[status] = statuses.get(status, 0) + 1
                if status != 200:
                    raise RuntimeError(f"the model server answered {status}: {reply}")
                for (_, row), pred in zip(batch.iterrows(), reply["predictions"], strict=True):
                    captured.append(
                        {
                            **row[["customer_id", "event_time", *features]].to_dict(),
                            drift.PREDICTION_COLUMN: pred["probability"],
                        }
                    )
            # What a client gets wrong: a missing feature and an unsupported content type.
            bad = _records(traffic.iloc[:1][features])[0]
            bad.pop("contract")
            status, reply = _http(f"{url}/invocations", json.dumps(bad), "application/json")
            statuses[status] = statuses.get(status, 0) + 1
            status_415, _ = _http(f"{url}/invocations", "<x/>", "application/xml")
            statuses[status_415] = statuses.get(status_415, 0) + 1
        pd.DataFrame(captured).to_csv(self.path("capture") / "captured.csv", index=False)
        traffic[["customer_id", "churned"]].to_csv(self.path("ground-truth") / "labels.csv", index=False)
        outcome = (
            f"{len(captured)} predictions captured; responses {dict(sorted(statuses.items()))}; "
            f"bad request answered: {reply.get('error', reply)}"
        )
        return outcome, {"captured": len(captured), "statuses": statuses, "bad_request": reply}

    def check_drift(self) -> tuple[str, dict]:
        reference = schema_mod.read_csv(self.work / "train" / "train.csv", self.schema)
        from model_code.serving import inference
        from model_code.training import artifact

        bundle = artifact.load(self.work / "model")
        reference[drift.PREDICTION_COLUMN] = [
            p["probability"] for p in inference.predict_fn(reference[self.schema.feature_names], bundle)
        ]
        current = pd.read_csv(self.work / "capture" / "captured.csv")
        current = schema_mod.coerce(current, self.schema).assign(
            **{drift.PREDICTION_COLUMN: current[drift.PREDICTION_COLUMN]}
        )
        report = drift.detect(reference, current, self.schema)
        (self.work / "drift.json").write_text(json.dumps(report.to_dict(), indent=2))
        outcome = f"drifted: {', '.join(report.drifted_features) or 'none'}"
        return outcome, report.to_dict()

    def check_quality(self) -> tuple[str, dict]:
        captured = pd.read_csv(self.work / "capture" / "captured.csv")
        labels = pd.read_csv(self.work / "ground-truth" / "labels.csv")
        predictions = captured.rename(columns={drift.PREDICTION_COLUMN: "probability"})
        report = quality.evaluate_window(
            predictions[["customer_id", "probability", "event_time"]],
            labels.rename(columns={"churned": "label"}),
            self.schema,
        )
        (self.work / "quality.json").write_text(json.dumps(report.to_dict(), indent=2))
        evaluation = json.loads((self.work / "evaluation" / "evaluation.json").read_text())
        trained_auc = evaluation["binary_classification_metrics"]["auc"]["value"]
        outcome = (
            f"AUC on live traffic {report.metrics['auc']:.3f} (at evaluation {trained_auc:.3f}) "
            f"over {report.matched} labelled predictions"
        )
        return outcome, report.to_dict()

    def run(self) -> list[StepRecord]:
        for name, fn in [
            ("Generate data", self.generate),
            ("ValidateData", self.validate),
            ("Split", self.split),
            ("TrainModel", self.train),
            ("EvaluateModel", self.evaluate),
            ("Serve and capture traffic", self.serve),
            ("CheckDrift", self.check_drift),
            ("CheckQuality", self.check_quality),
        ]:
            self._step(name, fn)
        return self.steps


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows as JSON-ready dicts: missing values as null, as a client would send them."""
    return json.loads(frame.to_json(orient="records"))


def _http(url: str, body: str | None = None, content_type: str | None = None) -> tuple[int, dict]:
    request = urllib.request.Request(url, data=body.encode() if body is not None else None)
    if content_type:
        request.add_header("Content-Type", content_type)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            raw = response.read()
            return response.status, json.loads(raw) if raw.strip().startswith(b"{") else {}
    except urllib.error.HTTPError as err:
        raw = err.read()
        return err.code, json.loads(raw) if raw.strip().startswith(b"{") else {}


def summary_table(steps: list[StepRecord]) -> Table:
    table = Table(title="MLOps lifecycle on this machine", show_lines=False)
    table.add_column("step", style="bold")
    table.add_column("seconds", justify="right")
    table.add_column("outcome")
    for s in steps:
        table.add_row(s.name, f"{s.seconds:.1f}", s.outcome)
    return table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="mlops local", description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=5000, help="customers to generate (default 5000)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--work-dir", type=Path, default=None, help="where to write (default .state/local)")
    args = parser.parse_args(argv)
    if args.rows < 200:
        parser.error(f"--rows: expected at least 200 customers to train and hold out, got {args.rows}")
    work = args.work_dir or state_dir() / "local"
    shutil.rmtree(work, ignore_errors=True)
    # Steps run in this process: their /opt/ml (and failure reasons) go under the work folder.
    os.environ.setdefault("MLOPS_OPT_ML", str(work / "opt_ml"))
    console = Console()
    lifecycle = Lifecycle(work, rows=args.rows, seed=args.seed, console=console)
    steps = lifecycle.run()
    console.print(summary_table(steps))
    (work / "summary.json").write_text(
        json.dumps(
            [{"step": s.name, "seconds": round(s.seconds, 3), "outcome": s.outcome} for s in steps], indent=2
        )
    )
    console.print(f"Artifacts under {work}; tracked runs: [bold]mlops experiments[/]")
    return 0
