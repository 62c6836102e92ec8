"""Errors raised or reported by the step executors.

Every error carries a stable ``code`` string. The worker stores it as the run's
``error_class`` so templates can list codes in ``non_retryable_errors`` and so the
SDK can map them to its own exception hierarchy (the lead merges these classes into
``pulser_ops.errors`` later; the codes must not change when that happens).
"""

from __future__ import annotations

from collections.abc import Sequence


class StepError(Exception):
    """Base class for every step-executor error; ``code`` is stable, the message is not."""

    code: str = "step_error"
    #: Whether a retry of the run could plausibly succeed. The worker passes this to
    #: ``complete_run(retryable => ...)``.
    retryable: bool = True

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class StepSpecError(StepError):
    """A template's ``steps`` array is malformed; ``issues`` names every bad field.

    Retrying cannot fix a bad template, hence ``retryable = False``.
    """

    code = "invalid_step_spec"
    retryable = False

    def __init__(self, issues: Sequence[tuple[str, str]]) -> None:
        self.issues: list[tuple[str, str]] = list(issues)
        self.field = self.issues[0][0] if self.issues else ""
        super().__init__("; ".join(f"{field}: {msg}" for field, msg in self.issues))


class TemplateError(StepError):
    """A ``{{ params.x }}`` placeholder could not be rendered (e.g. unknown param).

    The run's params are fixed for its lifetime, so retrying cannot help.
    """

    code = "template_error"
    retryable = False

    def __init__(self, message: str, *, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param


class StepFailed(StepError):
    """The step ran and failed (bad exit code, unexpected HTTP status, tool error...)."""

    code = "step_failed"

    def __init__(self, message: str, *, exit_code: int | None = None) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class StepTimeout(StepError):
    """The step exceeded its own ``timeout_seconds`` and was stopped."""

    code = "step_timeout"


class StepCancelled(StepError):
    """The run was cancelled while the step ran; handlers may raise it to stop early."""

    code = "step_cancelled"
    retryable = False


class MissingDependency(StepError):
    """Something the step needs is absent on this worker (Docker engine, an executable).

    Retryable: another worker (or this one later) may have it.
    """

    code = "missing_dependency"


class UnknownHandler(StepError):
    """A ``python`` step names a handler that is not in the worker's registry."""

    code = "unknown_handler"


class NonRetryable(StepError):
    """Raised by a python handler to fail the run without retries.

    ``error_class`` lets the handler pick the class recorded on the run (defaults to
    ``non_retryable``), e.g. ``raise NonRetryable("bad input", error_class="bad_input")``.
    """

    code = "non_retryable"
    retryable = False

    def __init__(self, message: str, *, error_class: str | None = None) -> None:
        super().__init__(message)
        self.error_class = error_class or self.code
