"""Processing and training steps: the project image's commands as subprocesses, one per host.

Each host gets SageMaker's config files and ``SM_*`` environment under its own remapped
``/opt/ml``; the hosts run at once and the first failing host's reason fails the step. Requests
are checked against botocore's model of CreateProcessingJob / CreateTrainingJob first.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from pipelines.local.errors import StepFailure
from pipelines.local.records import StepRecord
from pipelines.local.staging import _pack, _remap, _remap_path, _Staging

REPO_ROOT = Path(__file__).resolve().parents[2]
# The image's commands on PATH (docker/train, docker/serve, the `mlops` console script).
IMAGE_COMMANDS = {
    "train": ["-m", "model_code.entrypoints", "train"],
    "serve": ["-m", "model_code.entrypoints", "serve"],
    "mlops": ["-m", "model_code.cli"],
}
_PYTHON = re.compile(r"python(3(\.\d+)?)?")
_LOG_TAIL = 1500


class _ContainerSteps(_Staging):
    """The container steps of a run (``executor._Run``); they record properties for later steps."""

    properties: dict[str, dict[str, Any]]

    # -- container steps -------------------------------------------------------------------

    def processing(self, record: StepRecord, args: dict[str, Any]) -> None:
        job = self.job_name(record.name)
        request = {**args, "ProcessingJobName": job}
        self.validate("CreateProcessingJob", request)
        count = args["ProcessingResources"]["ClusterConfig"]["InstanceCount"]
        hosts = [f"algo-{i + 1}" for i in range(count)]
        roots = {h: self.step_dir(record.name) / h for h in hosts}
        outputs = args.get("ProcessingOutputConfig", {}).get("Outputs") or []
        for inp in args.get("ProcessingInputs") or []:
            self.download_input(inp, roots)
        for out in outputs:
            if "S3Output" not in out:
                raise StepFailure(f"output {out.get('OutputName')}: only S3 outputs run locally")
            for root in roots.values():
                _remap_path(out["S3Output"]["LocalPath"], root).mkdir(parents=True, exist_ok=True)
        app = args["AppSpecification"]
        if not app.get("ContainerEntrypoint"):
            raise StepFailure("AppSpecification has no ContainerEntrypoint and the project image has none")
        runs = {}
        for host, root in roots.items():
            config = root / "config"
            config.mkdir(parents=True, exist_ok=True)
            (config / "resourceconfig.json").write_text(json.dumps({"current_host": host, "hosts": hosts}))
            (config / "processingjobconfig.json").write_text(json.dumps(request, default=str))
            argv = self.command(app["ContainerEntrypoint"], app.get("ContainerArguments"), root)
            runs[host] = (argv, self.container_env(root, host, hosts, args.get("Environment")))
        self.run_containers(record, runs, args.get("StoppingCondition"))
        for out in outputs:
            for root in roots.values():
                self.upload_tree(_remap_path(out["S3Output"]["LocalPath"], root), out["S3Output"]["S3Uri"])
        arn = f"arn:aws:sagemaker:{self.executor.region}:{self.executor.account}:processing-job/{job.lower()}"
        self.properties[record.name] = {
            **request,
            "ProcessingJobArn": arn,
            "ProcessingJobStatus": "Completed",
        }
        record.metadata = {"ProcessingJob": {"Arn": arn}}
        record.outputs = {o["OutputName"]: o["S3Output"]["S3Uri"] for o in outputs}

    def training(self, record: StepRecord, args: dict[str, Any]) -> None:
        job = self.job_name(record.name)
        request = {**args, "TrainingJobName": job}
        self.validate("CreateTrainingJob", request)
        if args["ResourceConfig"].get("InstanceCount", 1) != 1:
            raise StepFailure("ResourceConfig.InstanceCount: the local executor trains on one instance")
        root = self.step_dir(record.name) / "algo-1"
        env = self.container_env(root, "algo-1", ["algo-1"], args.get("Environment"))
        channels = []
        for channel in args.get("InputDataConfig") or []:
            name, source = channel["ChannelName"], channel["DataSource"].get("S3DataSource")
            if source is None:
                raise StepFailure(f"channel {name}: only S3 data sources run locally")
            local = root / "input" / "data" / name
            self.download(source["S3Uri"], source.get("S3DataType", "S3Prefix"), {local: (0, 1)}, name)
            env[f"SM_CHANNEL_{name.upper()}"] = str(local)
            channels.append(name)
        config = root / "input" / "config"
        config.mkdir(parents=True, exist_ok=True)
        (config / "hyperparameters.json").write_text(json.dumps(args.get("HyperParameters") or {}))
        (config / "resourceconfig.json").write_text(
            json.dumps({"current_host": "algo-1", "hosts": ["algo-1"]})
        )
        (config / "inputdataconfig.json").write_text(
            json.dumps(
                {c["ChannelName"]: {"TrainingInputMode": "File"} for c in args.get("InputDataConfig") or []}
            )
        )
        for folder in ("model", "output/data"):
            (root / folder).mkdir(parents=True, exist_ok=True)
        env.update(
            TRAINING_JOB_NAME=job,  # SageMaker sets it in every training container
            SM_MODEL_DIR=str(root / "model"),
            SM_CHANNELS=json.dumps(channels),
            SM_INPUT_DIR=str(root / "input"),
            SM_INPUT_CONFIG_DIR=str(config),
            SM_OUTPUT_DIR=str(root / "output"),
            SM_OUTPUT_DATA_DIR=str(root / "output" / "data"),
        )
        algorithm = args["AlgorithmSpecification"]
        argv = self.command(
            algorithm.get("ContainerEntrypoint") or ["train"], algorithm.get("ContainerArguments"), root
        )
        self.run_containers(record, {"algo-1": (argv, env)}, args.get("StoppingCondition"))
        prefix = f"{args['OutputDataConfig']['S3OutputPath'].rstrip('/')}/{job}/output"
        model_uri = f"{prefix}/model.tar.gz"
        self.upload_file(_pack(root / "model", self.step_dir(record.name) / "model.tar.gz"), model_uri)
        if any((root / "output" / "data").iterdir()):
            self.upload_file(
                _pack(root / "output" / "data", self.step_dir(record.name) / "output.tar.gz"),
                f"{prefix}/output.tar.gz",
            )
        arn = f"arn:aws:sagemaker:{self.executor.region}:{self.executor.account}:training-job/{job.lower()}"
        self.properties[record.name] = {
            **request,
            "TrainingJobArn": arn,
            "TrainingJobStatus": "Completed",
            "SecondaryStatus": "Completed",
            "ModelArtifacts": {"S3ModelArtifacts": model_uri},
        }
        record.metadata = {"TrainingJob": {"Arn": arn}}
        record.outputs = {"TrainingJobName": job, "ModelArtifacts": model_uri}

    def command(self, entrypoint: list[str], arguments: list[str] | None, root: Path) -> list[str]:
        argv = [_remap(str(a), root) for a in [*entrypoint, *(arguments or [])]]
        head = os.path.basename(argv[0])
        if _PYTHON.fullmatch(head):
            return [self.executor.python, *argv[1:]]
        if head in IMAGE_COMMANDS:
            return [self.executor.python, *IMAGE_COMMANDS[head], *argv[1:]]
        return argv

    def container_env(
        self, root: Path, host: str, hosts: list[str], environment: dict | None
    ) -> dict[str, str]:
        # A step sees what a container would: credentials and endpoint of the caller (its role),
        # the step's Environment, and SageMaker's variables, none leaked from the caller's shell.
        env = {k: v for k, v in os.environ.items() if not k.startswith("SM_")}
        env.update(self.executor.env)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
        if self.executor.region:
            env.setdefault("AWS_DEFAULT_REGION", self.executor.region)
        env.update({k: _remap(str(v), root) for k, v in (environment or {}).items()})
        env.update(
            SM_CURRENT_HOST=host,
            SM_HOSTS=",".join(hosts),
            SM_RESOURCE_CONFIG=str(root / "config" / "resourceconfig.json"),
            SM_FAILURE_FILE=str(root / "output" / "failure"),
        )
        (root / "output").mkdir(parents=True, exist_ok=True)
        return env

    def run_containers(self, record: StepRecord, runs: dict[str, tuple], stopping: dict | None) -> None:
        """Run each host's process at once; the first failing host's reason fails the step."""
        timeout = (stopping or {}).get("MaxRuntimeInSeconds")
        step_dir = self.step_dir(record.name)
        record.logs = [str(step_dir / f"{host}.log") for host in runs]

        def run(host: str) -> str | None:
            argv, env = runs[host]
            log_path = step_dir / f"{host}.log"
            with log_path.open("wb") as out:
                try:
                    proc = subprocess.Popen(
                        argv, env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
                    )
                except OSError as exc:
                    return f"cannot start {argv[0]}: {exc}"
                try:
                    code = proc.wait(timeout=timeout)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
                    return f"MaxRuntimeExceeded: stopped after {timeout} s (StoppingCondition.MaxRuntimeInSeconds)"
            if code == 0:
                return None
            failure = Path(env["SM_FAILURE_FILE"])
            if failure.is_file() and failure.read_text().strip():
                return failure.read_text().strip()
            tail = log_path.read_text(errors="replace")[-_LOG_TAIL:].strip()
            return f"AlgorithmError: exit status {code}; log tail: {tail}"

        with ThreadPoolExecutor(max_workers=len(runs)) as pool:
            reasons = dict(zip(runs, pool.map(run, runs), strict=True))
        failed = [(host, reason) for host, reason in reasons.items() if reason]
        if failed:
            host, reason = failed[0]
            raise StepFailure(reason if len(runs) == 1 else f"{host}: {reason}")

    def validate(self, operation: str, request: dict[str, Any]) -> None:
        """Refuse what SageMaker's API would (wrong types, missing fields), in botocore's words."""
        from botocore.exceptions import ParamValidationError
        from botocore.validate import ParamValidator

        shape = self.executor.client("sagemaker").meta.service_model.operation_model(operation).input_shape
        report = ParamValidator().validate(request, shape)
        if report.has_errors():
            raise StepFailure(str(ParamValidationError(report=report.generate_report())))
