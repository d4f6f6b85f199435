"""``python -m pipelines.local``: the same as ``mlops pipeline run``."""

import sys

from pipelines.local.cli import main

if __name__ == "__main__":
    sys.exit(main())
