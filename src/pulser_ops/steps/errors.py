"""Errors of the step executors: they live in :mod:`pulser_ops.errors` with every other error
of the SDK (one module, stable codes); this module keeps the steps package's import path."""

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

__all__ = [
    "MissingDependency",
    "NonRetryable",
    "StepCancelled",
    "StepError",
    "StepFailed",
    "StepSpecError",
    "StepTimeout",
    "TemplateError",
    "UnknownHandler",
]
