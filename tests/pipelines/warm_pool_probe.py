"""A step that fits in loky workers (as the training search does) and returns: it must end.

Its workers wait for more work until the executor is shut down, which joblib's loky backend does
in threading's exit hooks; a process that skipped them would wait for its workers for ever.
"""

from __future__ import annotations

import sys

from joblib import Parallel, delayed, parallel_config

if __name__ == "__main__":
    with parallel_config(backend="loky"):
        squares = Parallel(n_jobs=2)(delayed(pow)(n, 2) for n in range(4))
    print(sum(squares))
    sys.exit(0)
