"""What running the security policy pack costs a local deploy.

::

    .venv/bin/python benchmarks/bench_policy_pack.py [--stack local] [--repeat 3]

The engine runs the pack (policies/) before any write: the program once under recording mocks,
then every policy over what it declared. This starts an embedded emulator, warms the process
(imports and the pipeline definitions, which a deploy builds once either way), then previews
the stack ``--repeat`` times with the pack and without, and prints the median seconds of each,
the difference and the ratio, and the time the policies alone take over the declared resources.
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import tempfile
import time
import warnings
from pathlib import Path


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stack", default="local")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    logging.getLogger("sagemaker").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")
    os.environ.setdefault("AWS_EC2_METADATA_DISABLED", "true")

    from localcloud import policy
    from localcloud.emulator import Emulator
    from localcloud.engine import Engine

    with Emulator() as emulator, tempfile.TemporaryDirectory() as state:

        def preview(pack: bool) -> float:
            engine = Engine(args.stack, emulator.endpoint_url, state_dir=Path(state), policy_pack=pack)
            started = time.perf_counter()
            engine.up(preview=True)
            return time.perf_counter() - started

        preview(False)  # warm-up: imports and pipeline definitions
        timed = {pack: [preview(pack) for _ in range(args.repeat)] for pack in (False, True)}
        engine = Engine(args.stack, emulator.endpoint_url, state_dir=Path(state))
        values, secret_keys = engine._program_config()
        declared = policy.record_program(
            engine.program,
            root=engine.root,
            project=engine.project,
            stack=args.stack,
            config=values,
            secret_keys=secret_keys,
            invoke=engine._invoke,
        )
        started = time.perf_counter()
        violations = policy.evaluate(declared, args.stack)
        policies_only = time.perf_counter() - started

    without, with_pack = statistics.median(timed[False]), statistics.median(timed[True])
    print(f"stack {args.stack}: preview, median of {args.repeat}")
    print(f"  without the pack  {without:7.2f} s")
    print(
        f"  with the pack     {with_pack:7.2f} s   (+{with_pack - without:.2f} s, ratio {with_pack / without:.2f})"
    )
    print(
        f"  the policies alone over {len(declared)} declared resources: {policies_only * 1000:.0f} ms "
        f"({len(violations)} violations)"
    )


if __name__ == "__main__":
    main()
