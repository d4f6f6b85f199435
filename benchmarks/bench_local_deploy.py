"""How long the local cloud takes to deploy each stack, and where the time goes.

::

    .venv/bin/python benchmarks/bench_local_deploy.py [--stacks dev staging prod local]

Each stack runs in a fresh Python process, as ``mlops local deploy`` would: start the embedded
emulator (a child process; ``--in-process`` runs it in a thread instead), deploy the stack as
committed into it (fresh, with an empty pipeline-definition cache), deploy again with no change
in the same process, then once more in a new process (as a user's second ``mlops local deploy``
against a running emulator is: imports, the program, the definitions from the cache), and
report wall seconds for each, split into

    imports      pulumi, pulumi-aws, the program's modules (before the first resource)
    definitions  building the three SageMaker pipeline definitions (the sagemaker SDK)
    aws calls    summed time of the deploy's AWS requests against the emulator (they overlap:
                 Pulumi registers independent resources concurrently)

and the number of resources and AWS calls.
"""

from __future__ import annotations

import argparse
import atexit
import functools
import json
import logging
import os
import resource
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def measure(stack: str, in_process: bool = False) -> dict:
    started = time.perf_counter()
    logging.getLogger("sagemaker").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")
    os.environ.setdefault("AWS_EC2_METADATA_DISABLED", "true")
    sys.path.insert(0, str(ROOT))
    from localcloud.emulator import Emulator, EmulatorProcess

    # A fresh deploy starts with no cached definition (read by the program's builder).
    cache = tempfile.mkdtemp(prefix="definitions-")
    os.environ["MLOPS_DEFINITION_CACHE"] = cache

    # As `mlops local deploy` runs it: the emulator in a process of its own (--in-process: a thread).
    emulator = Emulator().start() if in_process else EmulatorProcess()
    atexit.register(emulator.stop)  # also when a deploy fails: no emulator outlives the run
    emulator_s = time.perf_counter() - started

    import botocore.endpoint

    from infra import ml_pipelines
    from localcloud.engine import Engine

    spent = {"definitions": 0.0, "aws": 0.0}
    build = ml_pipelines._definition.__wrapped__

    def timed_definition(*args):
        t = time.perf_counter()
        try:
            return build(*args)
        finally:
            spent["definitions"] += time.perf_counter() - t

    # Still cached per process, as the program's own builder is: only real builds are timed.
    ml_pipelines._definition = functools.cache(timed_definition)
    send = botocore.endpoint.Endpoint._send

    def timed_send(self, request):
        t = time.perf_counter()
        try:
            return send(self, request)
        finally:
            spent["aws"] += time.perf_counter() - t

    botocore.endpoint.Endpoint._send = timed_send
    state_dir = Path(tempfile.mkdtemp())
    t = time.perf_counter()
    fresh = Engine(stack, emulator.endpoint_url, state_dir=state_dir).up()
    fresh_s = time.perf_counter() - t
    fresh_spent = dict(spent)
    spent.update(definitions=0.0, aws=0.0)
    t = time.perf_counter()
    again = Engine(stack, emulator.endpoint_url, state_dir=state_dir).up()
    again_s = time.perf_counter() - t
    t, children = time.perf_counter(), resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run(
        [sys.executable, __file__, "--redeploy", stack, emulator.endpoint_url, str(state_dir)],
        check=True,
        cwd=ROOT,
        env={**os.environ, "MLOPS_DEFINITION_CACHE": cache},
    )
    new_process_s = time.perf_counter() - t
    # The emulator, a child too, is still running: only the waited-for redeploy is counted.
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    new_process_cpu = used.ru_utime + used.ru_stime - children.ru_utime - children.ru_stime
    # A new emulator (seeded, so the same ARNs): a fresh deploy in a new process again, now with
    # the definitions in the cache, as every later `mlops local deploy --stack <name>` into a
    # new embedded emulator finds them.
    emulator.stop()
    emulator = Emulator().start() if in_process else EmulatorProcess()
    atexit.register(emulator.stop)
    t, children = time.perf_counter(), resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run(
        [sys.executable, __file__, "--redeploy", stack, emulator.endpoint_url, tempfile.mkdtemp()],
        check=True,
        cwd=ROOT,
        env={**os.environ, "MLOPS_DEFINITION_CACHE": cache},
    )
    warm_fresh_s = time.perf_counter() - t
    used_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    warm_fresh_cpu = used_after.ru_utime + used_after.ru_stime - children.ru_utime - children.ru_stime
    emulator.stop()
    return {
        "stack": stack,
        "resources": len(fresh.operations),
        "calls": sum(fresh.calls.values()),
        "emulator_start_s": round(emulator_s, 2),
        "fresh_s": round(fresh_s, 2),
        "fresh_definitions_s": round(fresh_spent["definitions"], 2),
        "fresh_aws_calls_s": round(fresh_spent["aws"], 2),
        "redeploy_s": round(again_s, 2),
        "redeploy_writes": again.writes,
        "redeploy_new_process_s": round(new_process_s, 2),
        "redeploy_new_process_cpu_s": round(new_process_cpu, 2),
        "fresh_new_process_cached_definitions_s": round(warm_fresh_s, 2),
        "fresh_new_process_cached_definitions_cpu_s": round(warm_fresh_cpu, 2),
        "process_cpu_s": round(time.process_time(), 2),
    }


def redeploy(stack: str, endpoint_url: str, state_dir: str) -> None:
    """A deploy in this (new) process, as ``AWS_ENDPOINT_URL=... mlops local deploy``: a no-change
    redeploy when ``state_dir`` holds the stack's state (it must write nothing), else fresh."""
    logging.getLogger("sagemaker").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")
    os.environ.setdefault("AWS_EC2_METADATA_DISABLED", "true")
    sys.path.insert(0, str(ROOT))
    from localcloud.engine import Engine

    again = (Path(state_dir) / f"{stack}.json").exists()
    result = Engine(stack, endpoint_url, state_dir=Path(state_dir)).up()
    assert not again or result.writes == 0, f"a no-change redeploy wrote {result.writes} times"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stacks", nargs="+", default=["dev", "staging", "prod", "local"])
    parser.add_argument(
        "--in-process", action="store_true", help="run the emulator in a thread, not a process"
    )
    parser.add_argument("--one", help=argparse.SUPPRESS)
    parser.add_argument("--redeploy", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.redeploy:
        redeploy(*args.redeploy)
        return 0
    if args.one:
        print(json.dumps(measure(args.one, args.in_process)))
        return 0
    rows = []
    for stack in args.stacks:
        t = time.perf_counter()
        out = subprocess.run(
            [sys.executable, __file__, "--one", stack, *(["--in-process"] if args.in_process else [])],
            stdout=subprocess.PIPE,  # the figures; a failure's traceback goes to stderr as it is
            text=True,
            check=True,
            cwd=ROOT,
        ).stdout
        row = json.loads(out.strip().splitlines()[-1])
        row["process_s"] = round(time.perf_counter() - t, 2)
        rows.append(row)
    keys = list(rows[0])
    print(" | ".join(keys))
    for row in rows:
        print(" | ".join(str(row[k]) for k in keys))
    return 0


if __name__ == "__main__":
    sys.exit(main())
