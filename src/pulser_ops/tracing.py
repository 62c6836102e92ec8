"""OpenTelemetry spans around enqueue, claim, each step and completion (``pulser-ops[otel]``).

Off until :func:`instrument` is called; then the SDK's own calls are the messaging operations
of OpenTelemetry's messaging semantic conventions, with ``messaging.system = "pulser_ops"`` and
the lane as the destination:

- ``send <lane>`` (PRODUCER) around ``runs.create`` / ``create_many``; its context travels in
  the run's params under ``"_trace"`` (W3C ``traceparent``/``tracestate``, through the global
  propagator), so a worker anywhere continues the enqueuer's trace;
- ``receive`` (CLIENT) around ``runs.claim``, and for each claimed run a ``process <lane>``
  span (CONSUMER) whose parent is that propagated context;
- ``step <name>`` (INTERNAL) around each step the reference worker runs, inside the run's
  ``process`` span;
- ``settle <lane>`` (CLIENT) around ``runs.complete`` / ``complete_many`` / ``release``, which
  also ends the run's ``process`` span with the outcome.

Why in the SDK and not the worker: these calls are the queue operations whoever calls them (the
reference worker, a custom worker on the SDK), and their spans need no change to either.

Templates whose params schema says ``additionalProperties: false`` must allow ``_trace`` (or
call ``instrument(propagate=False)``): the control plane checks params against the schema. A
request with an idempotency key carries no context (the same key with other params would be
refused as a different run); its ``process`` span starts a trace of its own.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from opentelemetry.trace import Span, Tracer, TracerProvider

    from .models import Run

SYSTEM = "pulser_ops"
#: The params key that carries the enqueuer's trace context to the run.
TRACE_KEY = "_trace"
#: Process spans kept open at most (a run this process never settles: lease lost, crash).
MAX_OPEN = 10_000


@dataclass
class _State:
    tracer: Tracer
    propagate: bool
    #: (run id, attempt) -> the run's open ``process`` span
    open: OrderedDict[tuple[str, int], Span]
    lock: threading.Lock


_state: _State | None = None


def instrument(tracer_provider: TracerProvider | None = None, *, propagate: bool = True) -> None:
    """Turn the spans on (``tracer_provider``: default, the global one). ``propagate``: carry
    the enqueuer's trace context to the run through its params."""
    global _state
    from opentelemetry import trace

    from . import __version__

    tracer = trace.get_tracer("pulser_ops", __version__, tracer_provider=tracer_provider)
    _state = _State(tracer, propagate, OrderedDict(), threading.Lock())


def uninstrument() -> None:
    """Turn the spans off again (open ``process`` spans end)."""
    global _state
    state, _state = _state, None
    if state is not None:
        with state.lock:
            for span in state.open.values():
                span.end()
            state.open.clear()


def enabled() -> bool:
    return _state is not None


def _attributes(operation: str, kind: str, lane: str | None, **extra: Any) -> dict[str, Any]:
    attrs: dict[str, Any] = {
        "messaging.system": SYSTEM,
        "messaging.operation.name": operation,
        "messaging.operation.type": kind,
    }
    if lane:
        attrs["messaging.destination.name"] = lane
    attrs.update({k: v for k, v in extra.items() if v is not None})
    return attrs


def _one(values: Sequence[str | None]) -> str | None:
    distinct = {v for v in values if v}
    return distinct.pop() if len(distinct) == 1 else None


def _name(operation: str, lane: str | None) -> str:
    return f"{operation} {lane}" if lane else operation


# --- send (enqueue) -------------------------------------------------------------------------------


class Send:
    """The ``send`` span of one enqueue call (see :func:`send`)."""

    def __init__(self, span: Span | None, carrier: dict[str, str] | None) -> None:
        self.span = span
        #: the context to put in each run's params (None: do not propagate)
        self.carrier = carrier

    def created(self, runs: Sequence[Run]) -> None:
        if self.span is None:
            return
        lane = _one([r.lane for r in runs])
        if lane:
            self.span.update_name(_name("send", lane))
            self.span.set_attribute("messaging.destination.name", lane)
        if len(runs) == 1:
            self.span.set_attribute("messaging.message.id", str(runs[0].id))
        template = _one([r.template for r in runs])
        if template:
            self.span.set_attribute("pulser_ops.template", template)


@contextmanager
def send(lanes: Sequence[str | None], count: int) -> Iterator[Send]:
    """Around an enqueue of ``count`` runs: a PRODUCER span, and the carrier of its context."""
    state = _state
    if state is None:
        yield Send(None, None)
        return
    from opentelemetry import propagate, trace

    lane = _one(lanes)
    batch = {"messaging.batch.message_count": count} if count > 1 else {}
    attrs = _attributes("send", "send", lane, **batch)
    with state.tracer.start_as_current_span(
        _name("send", lane), kind=trace.SpanKind.PRODUCER, attributes=attrs
    ) as span:
        carrier: dict[str, str] | None = None
        if state.propagate:
            carrier = {}
            propagate.inject(carrier)
        yield Send(span, carrier)


# --- receive (claim) and process ------------------------------------------------------------------


@contextmanager
def receive(lanes: Sequence[str], worker_id: str) -> Iterator[list[Run]]:
    """Around a claim: a ``receive`` span; put the claimed runs in the yielded list, and each
    gets a ``process`` span (ended by :func:`settle`)."""
    got: list[Run] = []
    state = _state
    if state is None:
        yield got
        return
    from opentelemetry import trace

    lane = _one(list(lanes))
    with state.tracer.start_as_current_span(
        _name("receive", lane),
        kind=trace.SpanKind.CLIENT,
        attributes=_attributes("claim", "receive", lane, **{"pulser_ops.worker.id": worker_id}),
    ) as span:
        yield got
        span.set_attribute("messaging.batch.message_count", len(got))
    for run in got:
        _start_process(state, run, worker_id)


def _start_process(state: _State, run: Run, worker_id: str) -> None:
    from opentelemetry import propagate, trace

    carrier = run.params.get(TRACE_KEY) if isinstance(run.params, Mapping) else None
    parent = propagate.extract(carrier) if isinstance(carrier, Mapping) else None
    span = state.tracer.start_span(
        _name("process", run.lane),
        context=parent,
        kind=trace.SpanKind.CONSUMER,
        attributes=_attributes(
            "process", "process", run.lane,
            **{"messaging.message.id": str(run.id), "pulser_ops.template": run.template,
               "pulser_ops.attempt": run.attempt, "pulser_ops.worker.id": worker_id},
        ),
    )
    with state.lock:
        state.open[(str(run.id), run.attempt)] = span
        while len(state.open) > MAX_OPEN:
            _, old = state.open.popitem(last=False)
            old.set_attribute("pulser_ops.abandoned", True)
            old.end()


def _process_span(state: _State, run_id: str, attempt: int | None) -> Span | None:
    with state.lock:
        if attempt is not None:
            return state.open.get((run_id, attempt))
        found = [s for (r, _a), s in state.open.items() if r == run_id]
        return found[-1] if found else None


# --- steps ----------------------------------------------------------------------------------------


@contextmanager
def step(run_id: str, attempt: int | None, name: str, kind: str) -> Iterator[Span | None]:
    """Around one step of a run, inside the run's ``process`` span (if this process claimed it)."""
    state = _state
    if state is None:
        yield None
        return
    from opentelemetry import trace

    parent = _process_span(state, run_id, attempt)
    ctx = trace.set_span_in_context(parent) if parent is not None else None
    with state.tracer.start_as_current_span(
        f"step {name}",
        context=ctx,
        kind=trace.SpanKind.INTERNAL,
        attributes={"messaging.system": SYSTEM, "messaging.message.id": run_id,
                    "pulser_ops.step.name": name, "pulser_ops.step.kind": kind},
    ) as span:
        yield span


def step_outcome(span: Span | None, status: str, error: str | None) -> None:
    if span is None:
        return
    from opentelemetry.trace import Status, StatusCode

    span.set_attribute("pulser_ops.step.status", status)
    if status != "succeeded":
        span.set_status(Status(StatusCode.ERROR, error or status))


# --- settle (complete, release) -------------------------------------------------------------------


@contextmanager
def settle(items: Sequence[tuple[str, int, str]], worker_id: str) -> Iterator[dict[str, str]]:
    """Around a completion or release of ``(run id, attempt, outcome)`` items: a ``settle``
    span inside each run's ``process`` span (the first one's, for a batch), then each
    ``process`` span ends with its outcome. Put a run's actual outcome (e.g. ``retried``) in
    the yielded dict, by run id, once the call answered."""
    actual: dict[str, str] = {}
    state = _state
    if state is None:
        yield actual
        return
    from opentelemetry import trace
    from opentelemetry.trace import Status, StatusCode

    spans = [_process_span(state, rid, attempt) for rid, attempt, _ in items]
    parent = next((s for s in spans if s is not None), None)
    ctx = trace.set_span_in_context(parent) if parent is not None else None
    with state.tracer.start_as_current_span(
        "settle",
        context=ctx,
        kind=trace.SpanKind.CLIENT,
        attributes=_attributes(
            "complete", "settle", None, **{"pulser_ops.worker.id": worker_id,
                                           "messaging.batch.message_count": len(items)
                                           if len(items) > 1 else None}),
    ):
        yield actual
    with state.lock:
        for (rid, attempt, asked), span in zip(items, spans, strict=True):
            state.open.pop((rid, attempt), None)
            if span is None:
                continue
            outcome = actual.get(rid, asked)
            span.set_attribute("pulser_ops.outcome", outcome)
            if outcome == "failed":
                span.set_status(Status(StatusCode.ERROR, "run failed"))
            span.end()


def with_context(params: Mapping[str, Any] | None, carrier: Mapping[str, str] | None
                 ) -> dict[str, Any] | None:
    """``params`` with the trace context under ``_trace`` (unchanged without a carrier)."""
    if not carrier:
        return None if params is None else dict(params)
    return {**(params or {}), TRACE_KEY: dict(carrier)}
