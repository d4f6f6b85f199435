"""`mlops evaluate` on a hostile test split: every row is scored, unlabelled or refused, and said so."""

from __future__ import annotations

import json

from model_code.contract import synthetic
from model_code.training import evaluate


def test_evaluate_accounts_for_every_row_of_a_hostile_test_file(model_dir, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("MLOPS_OPT_ML", str(tmp_path / "opt_ml"))
    test_dir = tmp_path / "test"
    test_dir.mkdir()
    lines = synthetic.generate(400, seed=11).to_csv(index=False).encode().split(b"\n")
    header = lines[0].decode().split(",")
    for line, column, value in [(1, "total_charges", b"inf"), (2, "tenure_months", b"2.5"), (3, "churned", b"maybe"),
                                (4, "churned", b"")]:  # fmt: skip
        cells = lines[line].split(b",")
        cells[header.index(column)] = value
        lines[line] = b",".join(cells)
    lines[5] += b",extra"
    (test_dir / "test.csv").write_bytes(b"\xef\xbb\xbf" + b"\r\n".join(lines))

    code = evaluate.main(
        ["--model-dir", model_dir, "--test-dir", str(test_dir), "--output-dir", str(tmp_path / "e")]
    )

    assert code == 0
    printed = capsys.readouterr().out
    assert "read 400 rows from 1 file(s); 396 kept, 4 rejected by the data contract" in printed
    for reason in ("total_charges: not a finite number", "tenure_months: not a whole number",
                   "churned: not one of 0 | 1", "malformed line: wrong number of fields"):  # fmt: skip
        assert f"1 x {reason}" in printed
    report = json.loads((tmp_path / "e" / "evaluation.json").read_text())
    assert (report["test_data"]["rows"], report["test_data"]["rows_unlabelled"]) == (395, 1)
