"""How training grows with rows: today's code (a git ref, serial, every row searched) against this tree.

Runs by hand, never in tests. Two parts:

``time`` (the default): for each of ``--sizes`` rows of the seeded synthetic churn data
(``model_code.contract.synthetic``, seed 1, one CSV file), ``python -m model_code.training.train``
with its default hyperparameters and tracking off, in a fresh process, once from a copy of
``model_code/`` at ``--baseline`` (default ``main``: ``git archive``) and once from this tree.
Each run's wall time; its CPU time, summed over the process and every worker it starts
(psutil samples the process tree every 0.1 s and keeps each process's last user + system
time, so up to 0.1 s of a process's end is missed); and its peak memory, the largest sum of
the tree's resident sets seen (pages the workers share are counted in each, so it is an upper
bound). No thread variables are set, as in a SageMaker training job. Prints both side by
side, the ratio, the 200k/20k growth and the load average (the machine may be shared).

``auc``: held-out AUC of the sampled search against the full search on the same split: the
churn data (``--auc-rows``, 80/20 split, the default ``--search-rows`` against 0) and
scikit-learn's bundled binary problems (``bench_model_selection.dataset``), which are smaller
than any sensible threshold, so there the sample is half the training rows.

    .venv/bin/python benchmarks/bench_training_scale.py time [--sizes 20000 200000 1000000]
        [--baseline-sizes 20000 200000] [--baseline main]
    .venv/bin/python benchmarks/bench_training_scale.py auc [--auc-rows 200000]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
WORK = REPO / ".state" / "bench-training-scale"


@dataclass
class Measured:
    wall: float
    cpu: float
    peak_mb: float
    exit_code: int
    chose: str


def data_for(rows: int) -> Path:
    """The seeded churn data of ``rows`` rows, written once under .state/."""
    folder = WORK / f"churn-{rows}"
    if not (folder / "part-0.csv").is_file():
        from model_code.contract import synthetic

        folder.mkdir(parents=True, exist_ok=True)
        synthetic.generate(rows, seed=1).to_csv(folder / "part-0.csv", index=False)
    return folder


def baseline_tree(ref: str) -> Path:
    """``model_code/`` as it is at ``ref``, extracted under .state/ (the image holds nothing else)."""
    commit = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "--short", ref], capture_output=True, text=True, check=True
    ).stdout.strip()
    root = WORK / f"baseline-{commit}"
    if not (root / "model_code").is_dir():
        root.mkdir(parents=True, exist_ok=True)
        archive = subprocess.run(
            ["git", "-C", str(REPO), "archive", commit, "model_code"], capture_output=True, check=True
        ).stdout
        subprocess.run(["tar", "-x", "-C", str(root)], input=archive, check=True)
    return root


def run_training(code_root: Path, data: Path, extra: list[str]) -> Measured:
    """One training run in a fresh process with ``code_root`` on the path, measured."""
    import psutil

    with tempfile.TemporaryDirectory(dir=WORK) as tmp:
        env = {
            k: v
            for k, v in os.environ.items()
            if k not in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "PYTHONPATH")
        }
        env.update(
            PYTHONPATH=str(code_root),
            MLOPS_TRACKING="off",
            SM_INPUT_CONFIG_DIR=str(Path(tmp) / "config"),
            MLOPS_OPT_ML=str(Path(tmp) / "opt_ml"),
            MLOPS_CODE_VERSION="bench",
        )
        argv = [sys.executable, "-m", "model_code.training.train", "--train", str(data)]
        argv += ["--model-dir", str(Path(tmp) / "model"), *extra]
        log = Path(tmp) / "log.txt"
        start = time.perf_counter()
        with log.open("w") as out:
            proc = subprocess.Popen(argv, cwd=tmp, env=env, stdout=out, stderr=subprocess.STDOUT)
            root = psutil.Process(proc.pid)
            cpu: dict[int, float] = {}
            peak = 0
            while proc.poll() is None:
                rss = 0
                try:
                    tree = [root, *root.children(recursive=True)]
                except psutil.NoSuchProcess:
                    break
                for p in tree:
                    try:
                        times = p.cpu_times()
                        cpu[p.pid] = times.user + times.system
                        rss += p.memory_info().rss
                    except psutil.NoSuchProcess:
                        pass
                peak = max(peak, rss)
                time.sleep(0.1)
            wall = time.perf_counter() - start
        text = log.read_text()
        chose = next((line.split(" (")[0] for line in text.splitlines() if line.startswith("trained ")), "")
        if proc.returncode:
            print(text[-2000:], file=sys.stderr)
        return Measured(
            wall, sum(cpu.values()), peak / 2**20, proc.returncode, chose.removeprefix("trained ")
        )


def time_main(args: argparse.Namespace) -> int:
    WORK.mkdir(parents=True, exist_ok=True)
    old_root = baseline_tree(args.baseline)
    print(f"machine: {os.cpu_count()} cores; load average at start {os.getloadavg()}")
    print(f"baseline: model_code/ at {args.baseline} ({old_root.name}); new: this tree ({REPO})")
    rows_done: dict[tuple[str, int], Measured] = {}
    for rows in args.sizes:
        data = data_for(rows)
        for label, root, run_it in (
            ("baseline", old_root, rows in args.baseline_sizes),
            ("new", REPO, True),
        ):
            if not run_it:
                continue
            m = run_training(root, data, [])
            rows_done[(label, rows)] = m
            print(
                f"{label:8} {rows:>9,} rows  wall {m.wall:8.1f} s  cpu {m.cpu:8.1f} s  "
                f"cpu/wall {m.cpu / m.wall:4.2f}  peak {m.peak_mb:7.0f} MB  exit {m.exit_code}  {m.chose}"
                f"  (load {os.getloadavg()[0]:.1f})",
                flush=True,
            )
    print()
    print(
        "| rows | baseline wall s | new wall s | wall ratio | baseline CPU s | new CPU s | new CPU/wall "
        "| baseline peak MB | new peak MB |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for rows in args.sizes:
        old, new = rows_done.get(("baseline", rows)), rows_done[("new", rows)]
        cells = [
            f"{rows:,}",
            f"{old.wall:.1f}" if old else "-",
            f"{new.wall:.1f}",
            f"{old.wall / new.wall:.1f}x" if old else "-",
            f"{old.cpu:.1f}" if old else "-",
            f"{new.cpu:.1f}",
            f"{new.cpu / new.wall:.2f}",
            f"{old.peak_mb:.0f}" if old else "-",
            f"{new.peak_mb:.0f}",
        ]
        print("| " + " | ".join(cells) + " |")
    small, large = min(args.sizes), sorted(args.sizes)[1] if len(args.sizes) > 1 else None
    if large:
        for label in ("baseline", "new"):
            a, b = rows_done.get((label, small)), rows_done.get((label, large))
            if a and b:
                print(f"{label}: {large:,} rows took {b.wall / a.wall:.1f}x the wall time of {small:,}")
    print(f"load average at the end {os.getloadavg()}")
    return 0


def auc_main(args: argparse.Namespace) -> int:
    import numpy as np
    from sklearn.model_selection import train_test_split

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from bench_model_selection import dataset

    from model_code.contract import schema as schema_mod
    from model_code.contract import synthetic
    from model_code.training import cores, selection
    from model_code.training.train import compact, fit_model, score

    def held_out(train, test, contract, search_rows: int, seed: int) -> tuple[float, str, float]:
        y = contract.is_positive(train[contract.target.column]).to_numpy(int)
        start = time.perf_counter()
        choice = selection.cross_validate(
            train, y, contract, random_state=seed, search_rows=search_rows, n_jobs=0
        )
        best = choice.best
        bundle = fit_model(
            train,
            contract,
            model_type=best.model_type,
            model_params=best.params,
            random_state=seed,
            n_jobs=cores.available_cores(),
        )
        return score(bundle, test)["auc"], best.name, time.perf_counter() - start

    print(f"load average at start {os.getloadavg()}")
    print(
        "| data set | training rows | searched rows | full search AUC | sampled search AUC | sampled - full "
        "| full chose | sampled chose | full s | sampled s |"
    )
    print("|---|---:|---:|---:|---:|---:|---|---|---:|---:|")
    cases = []
    if args.auc_rows:
        churn = schema_mod.load(schema_mod.EXAMPLE_SCHEMA)
        frame = compact(synthetic.generate(args.auc_rows, seed=4), churn)
        cases.append(("churn", frame, churn, args.search_rows))
    for name in args.datasets:
        data, contract = dataset(name)
        cases.append((name, data, contract, None))
    worst = 0.0
    for name, data, contract, search_rows in cases:
        target = contract.target.column
        diffs = []
        for seed in range(args.splits if search_rows is None else 1):
            train, test = train_test_split(data, test_size=0.2, random_state=seed, stratify=data[target])
            rows = search_rows or len(train) // 2
            full = held_out(train, test, contract, 0, seed)
            sampled = held_out(train, test, contract, rows, seed)
            diffs.append(sampled[0] - full[0])
            print(
                f"| {name} (split {seed}) | {len(train):,} | {rows:,} | {full[0]:.4f} | {sampled[0]:.4f} | "
                f"{sampled[0] - full[0]:+.4f} | {full[1]} | {sampled[1]} | {full[2]:.1f} | {sampled[2]:.1f} |",
                flush=True,
            )
        worst = min(worst, float(np.min(diffs)))
        print(f"| {name}: mean sampled - full | | | | | {float(np.mean(diffs)):+.4f} | | | | |", flush=True)
    print(f"largest loss of the sampled search: {-worst:.4f} AUC (target: at most 0.002)")
    print(f"load average at the end {os.getloadavg()}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="part")
    timing = sub.add_parser("time", help="wall, CPU and memory against the baseline (the default)")
    timing.add_argument("--sizes", type=int, nargs="+", default=[20_000, 200_000, 1_000_000])
    timing.add_argument(
        "--baseline-sizes",
        type=int,
        nargs="*",
        default=[20_000, 200_000],
        help="sizes the baseline also runs at (its 1M-row run takes about half an hour on one core)",
    )
    timing.add_argument("--baseline", default="main", help="git ref of today's code (default main)")
    auc = sub.add_parser("auc", help="held-out AUC of the sampled search against the full one")
    auc.add_argument("--auc-rows", type=int, default=200_000, help="churn rows (0: skip the churn data)")
    auc.add_argument("--search-rows", type=int, default=None, help="default: the training default")
    auc.add_argument("--datasets", nargs="*", default=["breast-cancer", "wine", "digits"])
    auc.add_argument("--splits", type=int, default=5)
    args = parser.parse_args(argv or sys.argv[1:] or ["time"])
    if args.part == "auc":
        from model_code.training import selection

        args.search_rows = args.search_rows or selection.DEFAULT_SEARCH_ROWS
        return auc_main(args)
    return time_main(args)


if __name__ == "__main__":
    raise SystemExit(main())
