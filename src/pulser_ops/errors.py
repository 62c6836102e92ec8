"""Every error the SDK raises, each with a stable ``code``.

Both transports map failures here from the same source of truth, the SQLSTATE the control
plane raised: psycopg exposes it as ``sqlstate``, PostgREST returns it as ``code`` in its
error body. Callers therefore never see a raw driver or HTTP error, and code that handles
``LeaseLost`` works the same over a direct connection and over Supabase.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, ClassVar, Literal


class PulserOpsError(Exception):
    """Base class. ``code`` is stable and safe to match on; the message is for people."""

    code: ClassVar[str] = "error"

    def __init__(
        self,
        message: str,
        *,
        detail: str | None = None,
        hint: str | None = None,
        sqlstate: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.detail = detail or None
        self.hint = hint or None
        self.sqlstate = sqlstate

    def detail_json(self) -> Any:
        """The detail as JSON when the control plane sent structured detail, else None."""
        if not self.detail:
            return None
        try:
            return json.loads(self.detail)
        except ValueError:
            return None

    def __str__(self) -> str:
        return self.message


class InvalidInput(PulserOpsError):
    """The request itself is malformed: a wrong type, a value out of range, a bad name."""

    code = "invalid_input"


class InvalidParams(InvalidInput):
    """Run params do not satisfy the template's params schema; ``field`` names the culprit."""

    code = "invalid_params"

    @property
    def field(self) -> str | None:
        return self.detail


class NotFound(PulserOpsError):
    code = "not_found"


class Conflict(PulserOpsError):
    """Something already exists that contradicts the request (e.g. a reused idempotency key)."""

    code = "conflict"


class LeaseLost(PulserOpsError):
    """The run's lease moved on (swept, completed, released or claimed by another worker).

    A worker that sees this must abandon the run quietly: someone else owns it now.
    """

    code = "lease_lost"


class AlreadyTerminal(PulserOpsError):
    """The run already succeeded, failed or was cancelled; terminal states never change."""

    code = "already_terminal"


class PermissionDenied(PulserOpsError):
    code = "permission_denied"


class TransportError(PulserOpsError):
    """The database or the Supabase API could not be reached, or dropped the connection."""

    code = "transport_error"


class Timeout(TransportError):
    """A statement or request timed out (e.g. Supabase's 8 s API statement timeout)."""

    code = "timeout"


class LockTimeout(Timeout):
    """A statement waited too long for a lock (SQLSTATE 55P03; Supabase's API roles have an
    8 s ``lock_timeout``). The server rolled the statement back, so sending it again is safe
    for every call, and the SDK does."""

    code = "lock_timeout"


class ConfigurationError(PulserOpsError):
    """The SDK was not told (or could not work out) where the control plane is."""

    code = "configuration_error"


MigrationErrorReason = Literal[
    "missing_local", "missing_remote", "squash_mismatch", "migration_failed", "seed_failed",
    "connection_failed", "bootstrap_failed", "database_error",
]  # fmt: skip


class MigrationError(PulserOpsError):
    """The migrations this SDK ships could not be applied (``pulser-ops db push``, or the
    embedded database as it starts).

    ``code`` is ``migration_error`` for all of them; ``reason`` says which one, stable for
    callers: ``missing_local`` (the database has versions this package does not ship),
    ``missing_remote`` (a shipped version sorts before the last applied one),
    ``squash_mismatch`` (the history holds only some of the versions a squashed migration
    replaces, or the squashed one next to them), ``migration_failed`` / ``seed_failed`` (a
    statement failed; nothing of that file was kept), ``bootstrap_failed``,
    ``connection_failed``, ``database_error``. ``versions`` names the
    migrations concerned, where there are any.
    """

    code = "migration_error"

    def __init__(
        self,
        reason: MigrationErrorReason,
        message: str,
        *,
        versions: Sequence[str] = (),
        sqlstate: str | None = None,
    ) -> None:
        super().__init__(message, sqlstate=sqlstate)
        self.reason: MigrationErrorReason = reason
        self.versions: tuple[str, ...] = tuple(versions)


class StorageError(PulserOpsError):
    """A file could not be stored or fetched (other than not found / permission)."""

    code = "storage_error"


class WorkerConfigError(ConfigurationError, ValueError):
    """A worker setting is invalid; the message is one line naming the source and the fix."""

    code = "worker_config_error"


class AlertRulesError(ConfigurationError, ValueError):
    """An alert rules file is invalid; the message names the file, the line and the key."""

    code = "alert_rules_error"

    def __init__(self, message: str, *, line: int | None = None) -> None:
        super().__init__(message)
        #: 1-based line of the file the problem is on (None: the file as a whole)
        self.line = line


# --- step executors ---------------------------------------------------------------------------
# A worker stores a step error's ``code`` as the run's ``error_class``, so templates can list
# these codes in ``non_retryable_errors``; the codes never change.


class StepError(PulserOpsError):
    """Base class for every step-executor error; ``code`` is stable, the message is not."""

    code: ClassVar[str] = "step_error"
    #: Whether a retry of the run could plausibly succeed. The worker passes this to
    #: ``complete_run(retryable => ...)``.
    retryable: ClassVar[bool] = True

    def __init__(self, message: str) -> None:
        super().__init__(message)


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


_BY_SQLSTATE: dict[str, type[PulserOpsError]] = {
    "PO400": InvalidInput,
    "PO422": InvalidParams,
    "PO404": NotFound,
    "PO409": Conflict,
    "PO410": LeaseLost,
    "PO411": AlreadyTerminal,
    "PO403": PermissionDenied,
    "42501": PermissionDenied,
    "23505": Conflict,
    "23503": NotFound,
    "22023": InvalidInput,
    "22P02": InvalidInput,
    "23514": InvalidInput,
    "23502": InvalidInput,
    "22001": InvalidInput,
    "22003": InvalidInput,
    "22007": InvalidInput,
    "22008": InvalidInput,
    "2201B": InvalidInput,
    "22021": InvalidInput,
    "22P05": InvalidInput,
    "57014": Timeout,
    "55P03": LockTimeout,
    # A function or table that is not there (PostgREST says PGRST202/404 for the same thing):
    # on a direct connection it means the migrations were not applied.
    "42883": NotFound,
    "42P01": NotFound,
    "3F000": NotFound,
    # PostgREST's own codes that reach a client of the API.
    "PGRST202": NotFound,
    "PGRST116": NotFound,
    "PGRST301": PermissionDenied,
    "PGRST302": PermissionDenied,
    "PGRST003": Timeout,
}


def error_for_code(
    code: str | None,
    message: str,
    *,
    detail: str | None = None,
    hint: str | None = None,
) -> PulserOpsError:
    """The typed error for a SQLSTATE (or PostgREST code), as raised by either transport."""
    cls: type[PulserOpsError]
    if code is None:
        cls = TransportError
    elif code in _BY_SQLSTATE:
        cls = _BY_SQLSTATE[code]
    elif code.startswith(("08", "57P", "53")):
        cls = TransportError
    elif code.startswith("22"):
        cls = InvalidInput
    else:
        cls = PulserOpsError
    return cls(message, detail=detail, hint=hint, sqlstate=code)


ALL_ERRORS: tuple[type[PulserOpsError], ...] = (
    PulserOpsError,
    InvalidInput,
    InvalidParams,
    NotFound,
    Conflict,
    LeaseLost,
    AlreadyTerminal,
    PermissionDenied,
    TransportError,
    Timeout,
    LockTimeout,
    ConfigurationError,
    MigrationError,
    StorageError,
    WorkerConfigError,
    StepError,
    StepSpecError,
    TemplateError,
    StepFailed,
    StepTimeout,
    StepCancelled,
    MissingDependency,
    UnknownHandler,
    NonRetryable,
)
