"""``mlops local --schema S --data D`` on a real dataset whose file has blank cells in a numeric
column: the run goes to the end, and the served AUC it reports is of the held-out rows.

The README's commands, run as a user runs them: the breast-cancer CSV written by
``benchmarks/datasets/breast_cancer.py``, then ``mlops local`` with its schema. Before the data
was typed by the contract, a column with a blank cell was read as text and phase 1's requests
carried ``"35.9"`` as strings: the endpoint answered 400 and the run stopped there.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pandas as pd

from localcloud.engine import ROOT

SCHEMA = ROOT / "benchmarks" / "datasets" / "breast-cancer.yaml"
BLANKS = {3: " ", 10: ""}  # row → what the person's spreadsheet left in mean_texture


def test_mlops_local_runs_to_the_end_on_a_csv_with_blank_cells_in_a_numeric_column(tmp_path):
    data = tmp_path / "breast-cancer.csv"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    subprocess.run(
        [sys.executable, "benchmarks/datasets/breast_cancer.py", str(data)], cwd=ROOT, env=env, check=True
    )
    frame = pd.read_csv(data, dtype=str, keep_default_na=False)
    for row, blank in BLANKS.items():
        frame.loc[row, "mean_texture"] = blank
    frame.to_csv(data, index=False)
    summary_path = tmp_path / "summary.json"

    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "mlops.cli",
            "local",
            "--schema",
            str(SCHEMA),
            "--data",
            str(data),
            "--json",
            str(summary_path),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=1500,
    )

    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads(summary_path.read_text())
    rows = len(frame)
    assert summary["data"]["rows_in"] == rows
    # The two blank cells break a non-nullable feature: quarantined at ingestion, never traffic.
    assert summary["data"]["rows_quarantined"] == len(BLANKS)
    assert [p["requests"] > 0 for p in summary["phases"]] == [True, True]
    # A seeded 20% of the clean rows, stratified on the label, is held out as traffic; the
    # quality job scores each id's latest prediction, so every held-out row, and only those.
    held_out = summary["quality"]["held_out_rows"]
    clean = rows - len(BLANKS)
    assert abs(held_out - 0.2 * clean) <= 2
    assert summary["quality"]["labelled"] == held_out
    assert 0.5 < summary["quality"]["auc"] <= 1.0
    assert f"of the {held_out} held-out rows" in " ".join(done.stdout.split())
