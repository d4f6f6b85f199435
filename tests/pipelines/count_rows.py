"""A tiny processing step for the local executor's tests: counts the files and rows it is given.

    python count_rows.py --input DIR --output DIR [--replicated DIR] [--label TEXT]
                         [--fail MESSAGE [--fail-into message|failure]] [--sleep SECONDS]

Writes ``count.json`` (``{"files", "rows", "label"}``, the property file the tests' conditions
read) and ``hosts/<host>.json`` (what this instance saw: its files, the hosts, its endpoint,
the MARKER variable and the names of its whole environment) to the output folder. With
``--fail`` it writes MESSAGE to ``/opt/ml/output/message`` (a processing job's reason) or,
with ``--fail-into failure``, ``/opt/ml/output/failure`` (a training job's), and exits 1.
``--sleep`` holds the step that long first, so tests can see steps overlap.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--input", required=True)
    parser.add_argument("--output", required=True)
    parser.add_argument("--replicated")
    parser.add_argument("--label", default="")
    parser.add_argument("--fail")
    parser.add_argument("--fail-into", choices=("message", "failure"), default="message")
    parser.add_argument("--sleep", type=float, default=0.0)
    args = parser.parse_args(argv)
    time.sleep(args.sleep)
    if args.fail:
        # /opt/ml/output/<file>, which the executor remaps to MLOPS_OPT_ML.
        reason = Path(os.environ["MLOPS_OPT_ML"]) / "output" / args.fail_into
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
        "environ": sorted(os.environ),
    }
    (out / "hosts").mkdir(exist_ok=True)
    (out / "hosts" / f"{host}.json").write_text(json.dumps(seen))
    return 0


if __name__ == "__main__":
    sys.exit(main())
