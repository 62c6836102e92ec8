"""Step executors of the reference worker: run one step of a run and report it.

The worker loop parses a template's ``steps`` with :func:`parse_steps`, then calls
:func:`run_step` for each with its own :class:`StepContext` implementation. This
package never touches the database; everything it produces goes through the context.
"""

from pulser_ops.errors import (
    MissingDependency,
    NonRetryable,
    StepCancelled,
    StepError,
    StepFailed,
    StepSpecError,
    StepTimeout,
    TemplateError,
    UnknownHandler,
)
from pulser_ops.models import EventLevel
from pulser_ops.steps.context import ArtifactKind, CancelToken, StepContext
from pulser_ops.steps.outcome import OutcomeStatus, StepOptions, StepOutcome
from pulser_ops.steps.recording import RecordedArtifact, RecordedEvent, RecordingContext
from pulser_ops.steps.registry import HandlerContext, HandlerRegistry, StepLogger
from pulser_ops.steps.runner import run_step
from pulser_ops.steps.specs import (
    DockerStep,
    HttpStep,
    McpStep,
    PythonStep,
    ShellStep,
    StepSpec,
    parse_step,
    parse_steps,
)

__all__ = [
    "ArtifactKind",
    "CancelToken",
    "DockerStep",
    "EventLevel",
    "HandlerContext",
    "HandlerRegistry",
    "HttpStep",
    "McpStep",
    "MissingDependency",
    "NonRetryable",
    "OutcomeStatus",
    "PythonStep",
    "RecordedArtifact",
    "RecordedEvent",
    "RecordingContext",
    "ShellStep",
    "StepCancelled",
    "StepContext",
    "StepError",
    "StepFailed",
    "StepLogger",
    "StepOptions",
    "StepOutcome",
    "StepSpec",
    "StepSpecError",
    "StepTimeout",
    "TemplateError",
    "UnknownHandler",
    "parse_step",
    "parse_steps",
    "run_step",
]
