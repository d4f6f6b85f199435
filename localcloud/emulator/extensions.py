"""The deploy-time extensions of moto, installed once per process (see the package docstring).

Apart from ``__init__`` so that the behaviours (localcloud/behaviours/) can build on them
without importing the emulator's server machinery, and the emulator install the behaviours.
"""

from __future__ import annotations

import threading

from localcloud.emulator import authorisation, iam, s3_tls, sagemaker

_install_lock = threading.Lock()
_installed = False


def install_extensions() -> None:
    """Patch moto once per process with the extensions (idempotent)."""
    global _installed
    with _install_lock:
        if not _installed:
            s3_tls.install()
            sagemaker.install()
            iam.install()
            authorisation.install()
            _installed = True
