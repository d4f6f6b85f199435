"""``mlops pipeline run`` (also ``python -m pipelines.local``): run a definition and print its steps."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from pipelines.local.errors import DefinitionError, ParameterError
from pipelines.local.executor import LocalExecutor, log
from pipelines.local.records import _text

PIPELINES = ("ingestion", "training", "monitoring")  # the builders pipelines.cli knows


def named_definition(name: str, *, region: str | None, bucket: str | None, schema: str | None) -> str:
    """One of the project's pipelines, built as ``mlops pipeline definition`` builds it."""
    import warnings

    from pipelines import cli, common

    # Building logs what the SDK leaves out and warns that a PipelineSession starts no job.
    logging.getLogger("sagemaker").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", message="Running within a PipelineSession")
    try:
        return cli.build_definition(
            name,
            region=region or common.DEFAULT_REGION,
            bucket=bucket or common.PLACEHOLDER_BUCKET,
            schema_path=schema,
        )
    except (cli.BuilderMissing, ValueError) as exc:
        raise DefinitionError(f"--pipeline {name}: {exc}") from exc


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mlops pipeline run",
        description="Run a SageMaker pipeline definition on this machine (S3 and SageMaker calls go "
        "wherever boto3 points, e.g. AWS_ENDPOINT_URL).",
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--definition", metavar="FILE", help="a definition JSON, as Pipeline.definition() returns"
    )
    source.add_argument("--pipeline", choices=PIPELINES, help="one of the project's pipelines")
    parser.add_argument(
        "--parameter",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a pipeline parameter (repeatable)",
    )
    built = parser.add_argument_group("with --pipeline: what the definition is built for")
    built.add_argument("--region", help="default: the placeholder region of pipelines.common")
    built.add_argument("--bucket", help="the artifact bucket (default: the placeholder bucket)")
    built.add_argument("--schema", help="the data contract (default: the example schema)")
    parser.add_argument("--pipeline-name", help="default: the file's name without .json, or --pipeline")
    parser.add_argument(
        "--work-dir", help="where executions keep their files (default: .state/pipelines/<name>)"
    )
    parser.add_argument("--execution-id", help="default: 12 random characters, as SageMaker's")
    return parser


def main(argv: list[str] | None = None) -> int:
    """``mlops pipeline run``: 0 when the execution succeeds, 1 when it fails, 2 when refused."""
    parser = build_parser()
    args = parser.parse_args(argv)
    parameters = {}
    for item in args.parameter:
        name, sep, value = item.partition("=")
        if not (sep and name):
            parser.error(f"--parameter {item!r}: expected NAME=VALUE")
        parameters[name] = value
    if not log.handlers:  # progress lines, one per step transition
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        log.addHandler(handler)
        log.setLevel(logging.INFO)
    try:
        if args.definition:
            definition = Path(args.definition).read_text()
            default_name = Path(args.definition).name.removesuffix(".json")
        else:
            built = {"region": args.region, "bucket": args.bucket, "schema": args.schema}
            definition, default_name = named_definition(args.pipeline, **built), args.pipeline
        executor = LocalExecutor(
            definition, pipeline_name=args.pipeline_name or default_name, work_dir=args.work_dir
        )
        execution = executor.start(parameters, execution_id=args.execution_id)
    except (DefinitionError, ParameterError, OSError, json.JSONDecodeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for record in execution.steps:
        seconds = (record.end - record.start).total_seconds() if record.end and record.start else 0.0
        detail = record.failure_reason or ", ".join(f"{k} {_text(v)}" for k, v in record.outputs.items())
        print(f"{record.status:<10} {record.name:<28} {record.type:<14} {seconds:7.1f} s  {detail}")
    print(f"execution {execution.execution_id}: {execution.status}", end="")
    print(f": {execution.failure_reason}" if execution.failure_reason else "")
    print(f"record: {execution.work_dir / 'execution.json'}")
    return 0 if execution.status == "Succeeded" else 1
