"""`mlops local` (what `make local` runs) with warm container starts against cold ones.

    .venv/bin/python benchmarks/bench_local_lifecycle.py [--rows 2000] [--cold]

Runs the whole scenario in a fresh process, as `make local` does, and prints the seconds of each
step and the process's wall time. With ``--cold`` it runs it a second time with every pipeline
step a fresh Python process (``MLOPS_COLD_STARTS=1``) and prints the ratio of the two.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run(rows: int, cold: bool) -> tuple[float, dict]:
    with tempfile.TemporaryDirectory() as folder:
        summary = Path(folder) / "summary.json"
        env = {**os.environ, "PYTHONPATH": str(ROOT), **({"MLOPS_COLD_STARTS": "1"} if cold else {})}
        started = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "mlops.cli", "local", "--rows", str(rows), "--json", str(summary)],
            cwd=ROOT,
            env=env,
            check=True,
            stdout=subprocess.DEVNULL,
        )
        return time.perf_counter() - started, json.loads(summary.read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=2000)
    parser.add_argument("--cold", action="store_true", help="also run with cold starts and compare")
    args = parser.parse_args()
    runs = {"warm": run(args.rows, cold=False)}
    if args.cold:
        runs["cold"] = run(args.rows, cold=True)
    steps = list(runs["warm"][1]["seconds_by_step"])
    print(f"{'step':32}" + "".join(f"{name:>10}" for name in runs))
    for step in steps:
        print(f"{step:32}" + "".join(f"{r[1]['seconds_by_step'].get(step, 0):10.1f}" for r in runs.values()))
    print(f"{'scenario total':32}" + "".join(f"{r[1]['seconds']:10.1f}" for r in runs.values()))
    print(f"{'process wall (make local)':32}" + "".join(f"{r[0]:10.1f}" for r in runs.values()))
    if args.cold:
        print(f"cold / warm wall time: {runs['cold'][0] / runs['warm'][0]:.2f}x")


if __name__ == "__main__":
    main()
