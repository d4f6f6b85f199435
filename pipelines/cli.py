"""``mlops pipeline``: print a pipeline's SageMaker definition, or run one locally.

::

    mlops pipeline definition --pipeline training [--region R] [--role-arn ARN] [--bucket B]
                              [--image-uri URI] [--kms-key-arn ARN] [--schema PATH] [--compact]
    mlops pipeline run ...    the local executor (pipelines.local), with its own options

With no flags the definition is built for the example schema and the placeholders of
``pipelines.common``: no network, no credentials, the same bytes every time. Each pipeline's
builder is imported by module name when asked for, so one missing builder does not stop
the others from printing.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import os
import sys
import warnings
from pathlib import Path
from typing import Any

from pipelines import common

# --pipeline -> the module whose get_pipeline(*, region, role_arn, bucket, schema, ...) builds it.
PIPELINES = {
    "ingestion": "pipelines.ingestion",
    "training": "pipelines.training",
    "monitoring": "pipelines.monitoring",
}
# Subcommands implemented elsewhere: name -> module with main(argv).
DELEGATED = {"run": "pipelines.local"}


class BuilderMissing(RuntimeError):
    """A pipeline's builder module is not in this installation."""


def _import(module: str) -> Any:
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        # Only the module itself missing is "not available"; a missing import inside it is a bug.
        if exc.name != module:
            raise
        raise BuilderMissing(f"{module} is not available in this installation") from None


def build_definition(
    pipeline: str,
    *,
    region: str = common.DEFAULT_REGION,
    role_arn: str = common.PLACEHOLDER_ROLE,
    bucket: str = common.PLACEHOLDER_BUCKET,
    image_uri: str | None = None,
    kms_key_arn: str | None = None,
    schema_path: str | Path | None = None,
) -> str:
    """The definition JSON of one pipeline, exactly as the SDK writes it."""
    from model_code.contract import schema as schema_mod

    if pipeline not in PIPELINES:
        raise ValueError(f"--pipeline: {pipeline!r} is not one of {' | '.join(PIPELINES)}")
    # sagemaker reads the region when imported; building never calls AWS with it. Importing
    # it also makes a boto3 client, which without credentials in the environment would probe
    # the EC2 instance metadata service for some: nothing here needs credentials.
    os.environ.setdefault("AWS_DEFAULT_REGION", region)
    os.environ.setdefault("AWS_EC2_METADATA_DISABLED", "true")
    schema = schema_mod.load(schema_path or schema_mod.EXAMPLE_SCHEMA)
    builder = _import(PIPELINES[pipeline])
    return builder.get_pipeline(
        region=region,
        role_arn=role_arn,
        bucket=bucket,
        schema=schema,
        image_uri=image_uri,
        kms_key_arn=kms_key_arn,
    ).definition()


def _quiet_sdk() -> None:
    # The SDK logs what it leaves out of a definition and warns that a PipelineSession
    # starts no job; both are expected here and would bury the output.
    for name in ("sagemaker", "sagemaker.config"):
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", message="Running within a PipelineSession")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mlops pipeline", description="SageMaker pipeline definitions, and the local executor."
    )
    commands = parser.add_subparsers(dest="command", metavar="{definition,run}")
    definition = commands.add_parser(
        "definition",
        help="print a pipeline's definition JSON (no AWS call)",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    add = definition.add_argument
    add("--pipeline", required=True, choices=list(PIPELINES))
    add("--region", default=common.DEFAULT_REGION)
    add("--role-arn", default=common.PLACEHOLDER_ROLE, help="the pipeline's execution role")
    add("--bucket", default=common.PLACEHOLDER_BUCKET, help="the artifact bucket")
    add("--image-uri", help="the project image (default: a placeholder in the region)")
    add("--kms-key-arn", help="encrypts volumes and outputs")
    add("--schema", help="the data contract (default: the example schema)")
    add("--compact", action="store_true", help="print the SDK's JSON as is, not indented")
    commands.add_parser(
        "run", help="run a pipeline with the local executor (its own options)", add_help=False
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in DELEGATED:
        try:
            module = _import(DELEGATED[argv[0]])
        except BuilderMissing as exc:
            print(f"mlops pipeline {argv[0]}: {exc}", file=sys.stderr)
            return 2
        return int(module.main(argv[1:]) or 0)
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    _quiet_sdk()
    try:
        text = build_definition(
            args.pipeline,
            region=args.region,
            role_arn=args.role_arn,
            bucket=args.bucket,
            image_uri=args.image_uri,
            kms_key_arn=args.kms_key_arn,
            schema_path=args.schema,
        )
    except BuilderMissing as exc:
        print(f"mlops pipeline definition: --pipeline {args.pipeline}: {exc}", file=sys.stderr)
        return 2
    except ValueError as exc:  # SchemaError included: it names the file and the key
        print(f"mlops pipeline definition: {exc}", file=sys.stderr)
        return 2
    try:
        print(text if args.compact else json.dumps(json.loads(text), indent=2))
    except BrokenPipeError:
        # `... | head` closed the pipe: what was asked for has been printed. Point stdout at
        # devnull so the interpreter's final flush does not raise again (Python's docs' recipe).
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0


if __name__ == "__main__":
    sys.exit(main())
