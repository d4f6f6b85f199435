"""Run by test_warm.py as a container's ``python -m``: prints what it sees, sleeps, exits as told."""

import json
import os
import sys
import time

if __name__ == "__main__":
    # Any argument past the second names a file descriptor the process should have been handed.
    handed = {fd: os.path.exists(f"/proc/self/fd/{fd}") for fd in sys.argv[3:]}
    print(
        json.dumps({"argv": sys.argv[1:], "environ": sorted(os.environ), "cwd": os.getcwd(), "fds": handed})
    )
    time.sleep(float(sys.argv[2]))
    sys.exit(int(sys.argv[1]))
