"""``python -m localcloud.emulator [--port N]``: the emulator as a process of its own.

Prints ``AWS_ENDPOINT_URL=http://127.0.0.1:<port>`` on its first line once it serves, then
serves until SIGINT or SIGTERM. The embedded emulator of ``mlops local deploy`` runs this
way, so moto's request handling has its own interpreter (and core) beside the deploy's.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading

from localcloud.emulator import Emulator


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m localcloud.emulator", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--port", type=int, default=0, help="0: a free port")
    args = parser.parse_args(argv)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    emulator = Emulator(port=args.port).start()
    print(f"AWS_ENDPOINT_URL={emulator.endpoint_url}", flush=True)
    stop.wait()
    emulator.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
