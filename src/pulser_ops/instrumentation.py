"""What the SDK reports about its queue operations: the one place the client calls for metrics
(:mod:`pulser_ops.metrics.process`) and spans (:mod:`pulser_ops.tracing`).

Both are off unless the process asked for them (it serves Prometheus metrics, or called
``pulser_ops.tracing.instrument()``), and then cost a few microseconds per call, not per run.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

from . import tracing
from .metrics.process import count_enqueued
from .models import Run, RunRequest

__all__ = ["EnqueueSeen", "observe_enqueue", "receive", "settle"]

receive = tracing.receive
settle = tracing.settle


@dataclass
class EnqueueSeen:
    """The requests to send (with the trace context in their params when tracing propagates)
    and, once they are in, the runs they became."""

    requests: list[RunRequest]
    _send: tracing.Send = field(repr=False)

    def created(self, runs: Sequence[Run]) -> None:
        count_enqueued(runs)
        self._send.created(runs)


@contextmanager
def observe_enqueue(requests: list[RunRequest]) -> Iterator[EnqueueSeen]:
    with tracing.send([r.lane for r in requests], len(requests)) as sent:
        if sent.carrier:
            # Not into keyed requests: the same key with other params (another trace) would be
            # refused as a different run (idempotency compares params).
            requests = [
                r
                if r.idempotency_key
                else r.model_copy(update={"params": tracing.with_context(r.params, sent.carrier)})
                for r in requests
            ]
        yield EnqueueSeen(requests, sent)
