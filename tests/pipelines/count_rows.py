"""A tiny processing step for the local executor's tests: counts the files and rows it is given.

    python count_rows.py --input DIR --output DIR [--replicated DIR] [--label TEXT] [--fail MESSAGE]

Writes ``count.json`` (``{"files", "rows", "label"}``, the property file the tests' conditions
read) and ``hosts/<host>.json`` (what this instance saw: its files, the hosts, its endpoint and
the MARKER variable) to the output folder. With ``--fail`` it writes MESSAGE to the exit-message
file and exits 1, as the project's containers do.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--input", required=True)
    parser.add_argument("--output", required=True)
    parser.add_argument("--replicated")
    parser.add_argument("--label", default="")
    parser.add_argument("--fail")
    args = parser.parse_args(argv)
    if args.fail:
        # A processing job's reason: /opt/ml/output/message, which the executor remaps.
        reason = Path(os.environ["MLOPS_OPT_ML"]) / "output" / "message"
        reason.parent.mkdir(parents=True, exist_ok=True)
        reason.write_text(args.fail)
        return 1
    files = sorted(p for p in Path(args.input).rglob("*") if p.is_file())
    rows = sum(len(p.read_text().splitlines()) - 1 for p in files)
    out = Path(args.output)
    (out / "count.json").write_text(json.dumps({"files": len(files), "rows": rows, "label": args.label}))
    host = os.environ.get("SM_CURRENT_HOST", "algo-1")
    seen = {
        "host": host,
        "hosts": os.environ.get("SM_HOSTS", host).split(","),
        "files": [p.name for p in files],
        "replicated": sorted(p.name for p in Path(args.replicated).iterdir()) if args.replicated else [],
        "endpoint": os.environ.get("AWS_ENDPOINT_URL"),
        "marker": os.environ.get("MARKER"),
    }
    (out / "hosts").mkdir(exist_ok=True)
    (out / "hosts" / f"{host}.json").write_text(json.dumps(seen))
    return 0


if __name__ == "__main__":
    sys.exit(main())
