"""How many cores a training job has, and how the model search shares them without oversubscribing.

A SageMaker training job gets a whole instance: its container sees the instance's vCPUs
(``os.sched_getaffinity``), and the instance type is named in
``/opt/ml/input/config/resourceconfig.json`` (``current_instance_type``). The local executor
writes the same file and runs the container as a process on this machine, whose cores it shares.
``joblib.cpu_count`` counts the cores this process may run on (CPU affinity and a cgroup's CPU
quota included), which is what both cases need.

The model search runs its (candidate, fold) fits in ``workers`` processes (joblib's loky
backend); each worker's math libraries (OpenMP in gradient boosting, BLAS in logistic
regression) get ``cores // workers`` threads, so workers times threads never exceeds the
cores: two pools each sized to every core would fight for them (the local executor saw a
training step take 7.9 s with them and 5.0 s with one thread, ``pipelines/local/warm.py``).
The refit of the chosen candidate is one fit, run in this process with every core's thread.
The environment's ``OMP_NUM_THREADS`` (the local executor sets 1 for steps that run side by
side) does not decide it: training runs alone in its job, on AWS and locally.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

RESOURCE_CONFIG = "resourceconfig.json"


def available_cores() -> int:
    """The cores this process may use: affinity and cgroup quota included, at least 1."""
    from joblib import cpu_count

    return max(1, int(cpu_count()))


def instance_type(config_dir: str | Path | None = None) -> str | None:
    """The training instance's type from SageMaker's resource config, or None outside a job."""
    config_dir = Path(config_dir or os.environ.get("SM_INPUT_CONFIG_DIR", "/opt/ml/input/config"))
    path = config_dir / RESOURCE_CONFIG
    try:
        return json.loads(path.read_text()).get("current_instance_type")
    except (OSError, ValueError, AttributeError):
        return None


@dataclass(frozen=True)
class Plan:
    """``workers`` processes for the search, ``threads`` math-library threads in each."""

    cores: int
    workers: int
    threads: int

    def to_dict(self) -> dict[str, int]:
        return {"cores": self.cores, "workers": self.workers, "threads_per_worker": self.threads}


def plan(n_jobs: int, n_tasks: int, cores: int | None = None) -> Plan:
    """Share ``cores`` between the search's ``n_tasks`` fits.

    ``n_jobs`` 0 means every core; a positive number caps the workers (1: the serial search,
    in this process). There are never more workers than fits.
    """
    if n_jobs < 0:
        raise ValueError(f"n_jobs: expected 0 (every core) or a positive number of workers, got {n_jobs}")
    cores = available_cores() if cores is None else max(1, cores)
    workers = max(1, min(n_jobs or cores, cores, max(n_tasks, 1)))
    return Plan(cores=cores, workers=workers, threads=max(1, cores // workers))
