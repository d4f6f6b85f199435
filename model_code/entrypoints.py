"""What the image's ``train`` and ``serve`` executables run (SageMaker's bring-your-own-container contract).

SageMaker starts a training job as ``docker run IMAGE train`` and an endpoint as
``docker run IMAGE serve``; docker/train and docker/serve only call
``python -m model_code.entrypoints train|serve``, so what they do lives here, tested.

* ``train``: the same code as ``mlops train`` (model_code.training.train), which reads SageMaker's channels and
  ``/opt/ml/input/config/hyperparameters.json`` itself (model_code.training.train).
* ``serve``: the same server as ``mlops serve`` (gunicorn, one worker process per core or
  ``$SAGEMAKER_MODEL_SERVER_WORKERS``, each with one math-library thread; see
  model_code.serving.serve) on /opt/ml/model (``$SM_MODEL_DIR``), port 8080 (or
  ``$SAGEMAKER_BIND_TO_PORT``, which SageMaker sets for a container in an inference
  pipeline), on all interfaces.

Options given after ``train`` or ``serve`` are passed on; for serve they win over these
defaults (argparse keeps the last occurrence).
"""

from __future__ import annotations

import os
import sys


def train(argv: list[str] | None = None) -> int:
    from model_code.training import train as training

    return training.main(list(argv or []))


def serve(argv: list[str] | None = None) -> int:
    # The same server as `mlops serve`, which itself holds the math libraries to one thread.
    defaults = [
        "--model-dir",
        os.environ.get("SM_MODEL_DIR", "/opt/ml/model"),
        "--port",
        os.environ.get("SAGEMAKER_BIND_TO_PORT", "8080"),
        "--host",
        "0.0.0.0",
    ]
    from model_code.serving import serve as serving

    return serving.main([*defaults, *(argv or [])])


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in ("train", "serve"):
        print("usage: python -m model_code.entrypoints train|serve [options]", file=sys.stderr)
        return 2
    command, rest = argv[0], argv[1:]
    return train(rest) if command == "train" else serve(rest)


if __name__ == "__main__":
    sys.exit(main())
