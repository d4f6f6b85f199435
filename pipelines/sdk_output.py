"""What the SageMaker SDK prints while a definition is built, kept to what a user needs.

Building a definition the way this project does it (offline, in a ``PipelineSession``, with
job names left to SageMaker) makes the SDK log a warning for every step ("Popping out
'ProcessingJobName' from the pipeline definition ..."), warn that nothing runs in a pipeline
session, and log its config lookups at INFO; importing it also configures the root logger at
INFO (``logging.basicConfig`` in ``sagemaker.core.experiments._metrics``). All of that is what
the program asks for, so ``pulumi up`` would show dozens of lines a user can do nothing
about. :func:`quiet_build` drops exactly those for the duration of a build, and leaves the
logging configuration as it found it; anything else the SDK says still shows.
"""

from __future__ import annotations

import contextlib
import logging
import re
import warnings
from collections.abc import Iterator

# Loggers that report the fields a definition deliberately leaves to SageMaker (job names,
# model package names, the marketplace flag): the names a pipeline execution gives them.
POPPING_LOGGERS = ("sagemaker.core.workflow.utilities", "sagemaker.mlops.workflow.model_step")
_POPPING = re.compile(r"^Popping out '\w+' from the pipeline definition")
# Building offline in a PipelineSession is the point: no job is meant to start.
_PIPELINE_SESSION = r"Running within a PipelineSession"
# Loggers whose INFO lines (config files looked up, the image URI, skipped role validation)
# narrate the build; their warnings and errors still show.
CHATTY_LOGGERS = ("sagemaker", "sagemaker.config")


class _DeliberateFields(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not _POPPING.match(record.getMessage())


@contextlib.contextmanager
def quiet_build() -> Iterator[None]:
    """Silence the SDK's messages about what the build deliberately does, inside the block only."""
    root = logging.getLogger()
    root_handlers, root_level = list(root.handlers), root.level
    levels = {name: logging.getLogger(name).level for name in CHATTY_LOGGERS}
    deliberate = _DeliberateFields()
    for name in POPPING_LOGGERS:
        logging.getLogger(name).addFilter(deliberate)
    for name in CHATTY_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=_PIPELINE_SESSION, category=UserWarning)
            yield
    finally:
        for name in POPPING_LOGGERS:
            logging.getLogger(name).removeFilter(deliberate)
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)
        # The SDK's import-time basicConfig is the build's side effect, not the caller's choice.
        for handler in [h for h in root.handlers if h not in root_handlers]:
            root.removeHandler(handler)
        root.setLevel(root_level)
