"""Hostile CSV files: each bad line is rejected with its number and text, the others go on."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from model_code.contract import synthetic, table
from model_code.contract.validate import main

HEADER = "customer_id,tenure_months,contract"


def _file(tmp_path, data: bytes, name: str = "in.csv"):
    path = tmp_path / name
    path.write_bytes(data)
    return table.read_csv_lines(path)


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (b"c2,5,one-year,extra", "line 3: 4 fields, but the header has 3"),
        (b"c2,5", "line 3: 2 fields, but the header has 3"),
        (b'c2,"5,one-year', "line 3: malformed quoting (unexpected end of data)"),
        (b'c2,"5"x,one-year', "line 3: malformed quoting (',' expected after '\"')"),
        ("c2,5,caf\u00e9".encode("latin-1"), "line 3: not valid UTF-8 (byte 0xe9 at position 9)"),
    ],
    ids=["extra-field", "missing-field", "unbalanced-quote", "stray-quote", "latin-1"],
)
def test_a_bad_line_is_rejected_alone_with_its_number_and_text(tmp_path, line, reason):
    raw = _file(tmp_path, HEADER.encode() + b"\nc1,3,one-year\n" + line + b"\nc3,4,two-year\n")
    assert raw.records["customer_id"].tolist() == ["c1", "c3"]
    assert raw.lines == [2, 4]
    assert [(n, why) for n, _, why, _ in raw.rejected] == [(3, reason)]
    assert raw.rejected[0][1] == line.decode("utf-8", "backslashreplace")
    assert raw.rows_in == 3


def test_bom_and_crlf_are_read_as_plain_lines(tmp_path):
    raw = _file(tmp_path, b"\xef\xbb\xbf" + HEADER.encode() + b"\r\nc1,3,one-year\r\n\r\nc2,4,\r\n")
    assert raw.columns == ["customer_id", "tenure_months", "contract"]
    assert raw.records.to_dict("list") == {
        "customer_id": ["c1", "c2"],
        "tenure_months": ["3", "4"],
        "contract": ["one-year", None],
    }
    assert raw.rejected == []


def test_quoted_commas_and_quotes_stay_in_their_value(tmp_path):
    raw = _file(tmp_path, HEADER.encode() + b'\n"c,1",3,"say ""hi"""\n')
    assert raw.records.iloc[0].tolist() == ["c,1", "3", 'say "hi"']


def test_an_empty_file_and_a_header_only_file_hold_no_rows(tmp_path):
    empty = _file(tmp_path, b"", "empty.csv")
    header_only = _file(tmp_path, HEADER.encode() + b"\r\n", "header.csv")
    assert (empty.columns, empty.rows_in) == (None, 0)
    assert (header_only.columns, header_only.rows_in) == (HEADER.split(","), 0)


def test_a_header_that_is_not_utf8_makes_the_file_unreadable(tmp_path):
    with pytest.raises(table.FileUnreadable, match=r"in.csv: the header not valid UTF-8 \(byte 0xe9"):
        _file(tmp_path, "caf\u00e9,x\n1,2\n".encode("latin-1"))


def test_validate_accounts_for_every_row_of_every_hostile_file(tmp_path, monkeypatch):
    """`mlops validate` on a folder of hostile files: rows in = accepted + quarantined, per file too."""
    monkeypatch.setenv("MLOPS_OPT_ML", str(tmp_path / "opt_ml"))
    data = tmp_path / "data"
    data.mkdir()
    good = synthetic.generate(30, seed=2)
    text = good.to_csv(index=False).replace("\n", "\r\n").encode()
    lines = text.split(b"\r\n")
    lines[3] += b",extra"  # ragged
    lines[4] = lines[4].replace(b",", b',"', 1)  # unbalanced quote
    lines[5] = lines[5].replace(b"check", "ch\u00e9ck".encode("latin-1"))  # mixed encoding
    lines[6] = lines[6].replace(lines[6].split(b",")[4], b"inf")  # total_charges
    (data / "hostile.csv").write_bytes(b"\xef\xbb\xbf" + b"\r\n".join(lines))
    (data / "empty.csv").write_bytes(b"")
    (data / "header.csv").write_bytes(lines[0] + b"\n")
    good.head(5).assign(customer_id=lambda f: "X" + f.customer_id).to_csv(data / "clean.csv", index=False)

    out = tmp_path / "out"
    code = main(["--input", str(data), "--accepted-dir", str(out / "a"), "--quarantine-dir", str(out / "q"),
                 "--report-dir", str(out / "r"), "--max-quarantine-share", "0.5"])  # fmt: skip

    report = json.loads((out / "r" / "validation.json").read_text())
    accepted = pd.read_csv(out / "a" / "accepted.csv")
    quarantined = pd.read_csv(out / "q" / "quarantine.csv", dtype=str)
    assert code == 0
    assert report["rows_in"] == 35 == len(accepted) + len(quarantined)
    assert {k.rpartition("/")[2]: v for k, v in report["rows_in_per_file"].items()} == {
        "clean.csv": 5, "empty.csv": 0, "header.csv": 0, "hostile.csv": 30,
    }  # fmt: skip
    assert quarantined[["line", "reason"]].values.tolist() == [
        ["7", "total_charges: inf is not a finite number"],
        ["4", "line 4: 12 fields, but the header has 11"],
        ["5", "line 5: malformed quoting (unexpected end of data)"],
        ["6", f"line 6: not valid UTF-8 (byte 0xe9 at position {lines[5].index(b'ch') + 3})"],
    ]
    assert quarantined["raw_line"].iloc[1] == lines[3].decode()


def test_the_fast_path_for_well_formed_files_reads_what_the_careful_one_does(tmp_path):
    data = b"\xef\xbb\xbf" + HEADER.encode() + b" \r\n\r\nc1, 3 ,one-year\r\nc2,,\r\n\nc3,5,two-year"
    path = tmp_path / "in.csv"
    path.write_bytes(data)
    assert table._well_formed(path, data.removeprefix(b"\xef\xbb\xbf")) is not None  # it is taken
    fast, careful = table.read_csv_lines(path), table.read_csv_lines(path, fast=False)
    assert fast.columns == careful.columns == HEADER.split(",")
    assert fast.lines == careful.lines == [3, 4, 6]
    pd.testing.assert_frame_equal(fast.records, careful.records)
