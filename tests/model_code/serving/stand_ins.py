"""Stand-in pipelines for model server tests, saved as model artifacts and loaded by a real server.

They live in an importable module because the server is another process: it unpickles them
from model.joblib, so their classes must be importable by name there.
"""

from __future__ import annotations

import os
import time

import numpy as np

# Where SlowPipeline records each prediction it starts (one line per call), if set.
CALLS_VARIABLE = "STAND_IN_CALLS"


class SlowPipeline:
    """Answers 0.5 for every row after ``seconds``; appends a line to $STAND_IN_CALLS per call."""

    classes_ = np.array([0, 1])

    def __init__(self, seconds: float):
        self.seconds = seconds

    def predict_proba(self, data):
        calls = os.environ.get(CALLS_VARIABLE)
        if calls:
            with open(calls, "a") as out:
                out.write("call\n")
        time.sleep(self.seconds)
        return np.tile([0.5, 0.5], (len(data), 1))


class ThreadReporter:
    """Answers, as the probability, the most threads any math library may use here / 100."""

    classes_ = np.array([0, 1])

    def predict_proba(self, data):
        from threadpoolctl import threadpool_info

        # Reported from the thread that predicts: OpenMP's thread count is a per-thread setting.
        most = max((lib["num_threads"] for lib in threadpool_info()), default=0)
        return np.tile([1 - most / 100, most / 100], (len(data), 1))


class Broken:
    classes_ = np.array([0, 1])

    def predict_proba(self, data):
        raise RuntimeError("secret internals")
