"""Processing and training steps: the project image's commands as subprocesses, one per host.

Each request is checked against AWS's model of CreateProcessingJob / CreateTrainingJob
before anything runs. Each host then gets SageMaker's config files under its own remapped
``/opt/ml`` and a clean environment (:func:`container_env`): the step's ``Environment``,
what SageMaker sets for the job type, and what the process needs to reach the emulator;
nothing else of the caller's. The hosts run at once; the first failing host's reason, read
from the one file SageMaker reads for the job type, fails the step.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from model_code.container import PROCESSING, REASON_FILES, REASON_LIMIT, TRAINING
from pipelines.local import warm
from pipelines.local.context import RunContext
from pipelines.local.errors import StepFailure
from pipelines.local.records import StepRecord
from pipelines.local.staging import (
    download,
    download_input,
    pack,
    remap,
    remap_path,
    upload_file,
    upload_tree,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
# The image's commands on PATH (docker/train, docker/serve).
IMAGE_COMMANDS = {
    "train": ["-m", "model_code.entrypoints", "train"],
    "serve": ["-m", "model_code.entrypoints", "serve"],
}
# What the image's ENV and its base image set (Dockerfile), besides PATH and PYTHONPATH.
IMAGE_ENV = {"LANG": "C.UTF-8", "PYTHONUNBUFFERED": "1", "PYTHONDONTWRITEBYTECODE": "1"}
IMAGE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_PYTHON = re.compile(r"python(3(\.\d+)?)?")
_LOG_TAIL = 1500


def processing(context: RunContext, record: StepRecord, args: dict[str, Any]) -> None:
    """Run a Processing step's job; its properties are DescribeProcessingJob's."""
    request = {"ProcessingJobName": context.job_name(record.name), **args}
    context.check(record.name, "CreateProcessingJob", request)
    job = request["ProcessingJobName"]
    count = args["ProcessingResources"]["ClusterConfig"]["InstanceCount"]
    hosts = [f"algo-{i + 1}" for i in range(count)]
    roots = {h: context.step_dir(record.name) / h for h in hosts}
    outputs = args.get("ProcessingOutputConfig", {}).get("Outputs") or []
    s3 = context.client("s3")
    for inp in args.get("ProcessingInputs") or []:
        download_input(s3, inp, roots)
    for out in outputs:
        if "S3Output" not in out:
            raise StepFailure(f"output {out.get('OutputName')}: only S3 outputs run locally")
        for root in roots.values():
            remap_path(out["S3Output"]["LocalPath"], root).mkdir(parents=True, exist_ok=True)
    app = args["AppSpecification"]
    if not app.get("ContainerEntrypoint"):
        raise StepFailure("AppSpecification has no ContainerEntrypoint and the project image has none")
    runs = {}
    for host, root in roots.items():
        config = root / "config"
        config.mkdir(parents=True, exist_ok=True)
        (config / "resourceconfig.json").write_text(json.dumps({"current_host": host, "hosts": hosts}))
        (config / "processingjobconfig.json").write_text(json.dumps(request, default=str))
        argv = command(context, app["ContainerEntrypoint"], app.get("ContainerArguments"), root)
        runs[host] = (argv, container_env(context, root, host, hosts, args.get("Environment")))
    run_containers(context, record, PROCESSING, runs, args.get("StoppingCondition"))
    for out in outputs:
        for root in roots.values():
            upload_tree(s3, remap_path(out["S3Output"]["LocalPath"], root), out["S3Output"]["S3Uri"])
    arn = context.arn("processing-job", job)
    context.properties[record.name] = {**request, "ProcessingJobArn": arn, "ProcessingJobStatus": "Completed"}
    record.metadata = {"ProcessingJob": {"Arn": arn}}
    record.outputs = {o["OutputName"]: o["S3Output"]["S3Uri"] for o in outputs}


def training(context: RunContext, record: StepRecord, args: dict[str, Any]) -> None:
    """Run a Training step's job; its properties are DescribeTrainingJob's."""
    request = {"TrainingJobName": context.job_name(record.name), **args}
    context.check(record.name, "CreateTrainingJob", request)
    job = request["TrainingJobName"]
    if args["ResourceConfig"].get("InstanceCount", 1) != 1:
        raise StepFailure("ResourceConfig.InstanceCount: the local executor trains on one instance")
    arn = context.arn("training-job", job)
    root = context.step_dir(record.name) / "algo-1"
    env = container_env(context, root, "algo-1", ["algo-1"], args.get("Environment"))
    # SageMaker names the job to its container; the SM_* paths stand in for the /opt/ml mounts.
    env.update(TRAINING_JOB_NAME=job, TRAINING_JOB_ARN=arn)
    channels = []
    for channel in args.get("InputDataConfig") or []:
        name, source = channel["ChannelName"], channel["DataSource"].get("S3DataSource")
        if source is None:
            raise StepFailure(f"channel {name}: only S3 data sources run locally")
        local = root / "input" / "data" / name
        download(
            context.client("s3"), source["S3Uri"], source.get("S3DataType", "S3Prefix"), {local: (0, 1)}, name
        )
        env[f"SM_CHANNEL_{name.upper()}"] = str(local)
        channels.append(name)
    config = root / "input" / "config"
    config.mkdir(parents=True, exist_ok=True)
    (config / "hyperparameters.json").write_text(json.dumps(args.get("HyperParameters") or {}))
    (config / "resourceconfig.json").write_text(json.dumps({"current_host": "algo-1", "hosts": ["algo-1"]}))
    (config / "inputdataconfig.json").write_text(
        json.dumps(
            {c["ChannelName"]: {"TrainingInputMode": "File"} for c in args.get("InputDataConfig") or []}
        )
    )
    for folder in ("model", "output/data"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    env.update(
        SM_MODEL_DIR=str(root / "model"),
        SM_CHANNELS=json.dumps(channels),
        SM_INPUT_DIR=str(root / "input"),
        SM_INPUT_CONFIG_DIR=str(config),
        SM_OUTPUT_DIR=str(root / "output"),
        SM_OUTPUT_DATA_DIR=str(root / "output" / "data"),
    )
    algorithm = args["AlgorithmSpecification"]
    entrypoint = algorithm.get("ContainerEntrypoint") or ["train"]
    argv = command(context, entrypoint, algorithm.get("ContainerArguments"), root)
    run_containers(context, record, TRAINING, {"algo-1": (argv, env)}, args.get("StoppingCondition"))
    prefix = f"{args['OutputDataConfig']['S3OutputPath'].rstrip('/')}/{job}/output"
    model_uri = f"{prefix}/model.tar.gz"
    s3, step_dir = context.client("s3"), context.step_dir(record.name)
    upload_file(s3, pack(root / "model", step_dir / "model.tar.gz"), model_uri)
    if any((root / "output" / "data").iterdir()):
        upload_file(s3, pack(root / "output" / "data", step_dir / "output.tar.gz"), f"{prefix}/output.tar.gz")
    context.properties[record.name] = {
        **request,
        "TrainingJobArn": arn,
        "TrainingJobStatus": "Completed",
        "SecondaryStatus": "Completed",
        "ModelArtifacts": {"S3ModelArtifacts": model_uri},
    }
    record.metadata = {"TrainingJob": {"Arn": arn}}
    record.outputs = {"TrainingJobName": job, "ModelArtifacts": model_uri}


def command(context: RunContext, entrypoint: list[str], arguments: list[str] | None, root: Path) -> list[str]:
    """The argv the image would run, /opt/ml remapped; ``python`` is this machine's interpreter."""
    argv = [remap(str(a), root) for a in [*entrypoint, *(arguments or [])]]
    head = os.path.basename(argv[0])
    if _PYTHON.fullmatch(head):
        return [context.python, *argv[1:]]
    if head in IMAGE_COMMANDS:
        return [context.python, *IMAGE_COMMANDS[head], *argv[1:]]
    return argv


def container_env(
    context: RunContext, root: Path, host: str, hosts: list[str], environment: dict | None
) -> dict[str, str]:
    """A host's whole environment, built from nothing as SageMaker builds a container's.

    The image's PATH, PYTHONPATH and ENV; the step's ``Environment`` (``/opt/ml`` remapped);
    what the executor substitutes for SageMaker's mounts (``MLOPS_OPT_ML``, the hosts); and
    ``context.reach`` (endpoint, region, credentials). A fresh HOME keeps the caller's
    ``~/.aws`` and caches out, as a container has none of them.
    """
    home = root.parent / f"{host}-home"
    home.mkdir(parents=True, exist_ok=True)
    (root / "output").mkdir(parents=True, exist_ok=True)
    env = {
        **IMAGE_ENV,
        **warm.THREAD_LIMITS,
        "PATH": f"{Path(context.python).parent}{os.pathsep}{IMAGE_PATH}",
        "PYTHONPATH": str(REPO_ROOT),  # the image installs this checkout
        "HOME": str(home),
        **context.reach,
    }
    env.update({k: remap(str(v), root) for k, v in (environment or {}).items()})
    env.update(
        SM_CURRENT_HOST=host,
        SM_HOSTS=",".join(hosts),
        SM_RESOURCE_CONFIG=str(root / "config" / "resourceconfig.json"),
        MLOPS_OPT_ML=str(root),  # the image's model_code.container finds /opt/ml here
    )
    return env


def _timed_out(timeout: float) -> str:
    return f"MaxRuntimeExceeded: stopped after {timeout} s (StoppingCondition.MaxRuntimeInSeconds)"


def run_containers(
    context: RunContext, record: StepRecord, job: str, runs: dict[str, tuple], stopping: dict | None
) -> None:
    """Run each host's process at once; the first failing host's reason fails the step."""
    timeout = (stopping or {}).get("MaxRuntimeInSeconds")
    step_dir = context.step_dir(record.name)
    record.logs = [str(step_dir / f"{host}.log") for host in runs]

    def run(host: str) -> str | None:
        argv, env = runs[host]
        log_path = step_dir / f"{host}.log"
        workdir = step_dir / f"{host}-workdir"  # the image's WORKDIR: throwaway, like the container's
        workdir.mkdir(exist_ok=True)
        module = warm.module_of(argv, context.python)
        if module is not None:
            code = warm.run(module, argv[3:], env, workdir, log_path, timeout)
            if code is None:
                return _timed_out(timeout)
        else:
            with log_path.open("wb") as out:
                try:
                    proc = subprocess.Popen(
                        argv,
                        env=env,
                        cwd=workdir,
                        stdout=out,
                        stderr=subprocess.STDOUT,
                        stdin=subprocess.DEVNULL,
                    )
                except OSError as exc:
                    return f"cannot start {argv[0]}: {exc}"
                try:
                    code = proc.wait(timeout=timeout)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
                    return _timed_out(timeout)
        if code == 0:
            return None
        # Only the file SageMaker reads for this job type: a reason written elsewhere is lost.
        reason = Path(env["MLOPS_OPT_ML"]) / REASON_FILES[job]
        if reason.is_file() and reason.read_text(errors="replace").strip():
            return reason.read_text(errors="replace").strip()[:REASON_LIMIT]
        tail = log_path.read_text(errors="replace")[-_LOG_TAIL:].strip()
        return f"AlgorithmError: exit status {code}; log tail: {tail}"

    with ThreadPoolExecutor(max_workers=len(runs)) as pool:
        reasons = dict(zip(runs, pool.map(run, runs), strict=True))
    failed = [(host, reason) for host, reason in reasons.items() if reason]
    if failed:
        host, reason = failed[0]
        raise StepFailure(reason if len(runs) == 1 else f"{host}: {reason}")
