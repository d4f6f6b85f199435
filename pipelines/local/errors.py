"""The executor's errors: a definition or a start request refused, and a step's failure."""


class DefinitionError(ValueError):
    """A definition the executor cannot run; refused before any step starts."""


class ParameterError(ValueError):
    """A start request's parameter that is unknown or of the wrong type; the message names it."""


class StepFailure(RuntimeError):
    """A step's failure; the message is its FailureReason."""
