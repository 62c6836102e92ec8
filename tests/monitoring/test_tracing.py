"""OpenTelemetry spans (pulser_ops.tracing, the ``otel`` extra), caught by the SDK's in-memory
exporter: an enqueue inside the caller's trace, the claim, a ``process`` span per run that
continues the enqueuer's trace (its context travelled in the run's params), a span per step and
the settling completion, with the messaging semantic conventions."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from pulser_ops import Client, tracing
from pulser_ops.worker import Worker, WorkerConfig


@pytest.fixture
def otel() -> Iterator[tuple[TracerProvider, InMemorySpanExporter]]:
    """The app's tracer provider, the SDK instrumented with it, spans kept in memory."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.instrument(provider)
    try:
        yield provider, exporter
    finally:
        tracing.uninstrument()


def _named(found: list[ReadableSpan], prefix: str) -> list[ReadableSpan]:
    return [s for s in found if s.name.startswith(prefix)]


def test_a_run_continues_the_trace_of_the_request_that_enqueued_it(
    client: Client, otel: tuple[TracerProvider, InMemorySpanExporter]
) -> None:
    provider, exporter = otel
    client.templates.upsert({"name": "two-steps", "max_attempts": 1, "steps": [
        {"kind": "shell", "name": "prepare", "command": "true"},
        {"kind": "shell", "name": "fail", "command": "exit 4"}]})  # fmt: skip
    app = trace.get_tracer("the-app", tracer_provider=provider)
    with app.start_as_current_span("POST /reports") as request:
        run = client.runs.create("two-steps", {"who": "me"})
    keyed = client.runs.create("two-steps", idempotency_key="k-1")
    assert "traceparent" in run.params["_trace"] and run.params["who"] == "me"
    assert "_trace" not in keyed.params  # a keyed request carries no context (see tracing)
    cfg = WorkerConfig(worker_id="w-otel", lanes=("A",), poll_seconds=0.1, burst=True)
    assert Worker(client, config=cfg, listen=False).run() == 0

    found = list(exporter.get_finished_spans())
    [send] = [s for s in _named(found, "send A") if s.parent and
              s.parent.span_id == request.get_span_context().span_id]  # fmt: skip
    assert send.kind == SpanKind.PRODUCER
    assert send.attributes["messaging.system"] == "pulser_ops"
    assert send.attributes["messaging.destination.name"] == "A"
    assert send.attributes["messaging.operation.type"] == "send"
    assert send.attributes["messaging.message.id"] == str(run.id)

    receives = _named(found, "receive A")
    assert receives and all(s.kind == SpanKind.CLIENT for s in receives)
    assert sum(s.attributes["messaging.batch.message_count"] for s in receives) == 2

    by_run = {s.attributes["messaging.message.id"]: s for s in _named(found, "process A")}
    process = by_run[str(run.id)]
    assert process.kind == SpanKind.CONSUMER
    assert process.context.trace_id == request.get_span_context().trace_id  # the same trace
    assert process.parent is not None and process.parent.span_id == send.context.span_id
    assert process.attributes["pulser_ops.outcome"] == "failed"
    assert process.status.status_code == StatusCode.ERROR
    assert by_run[str(keyed.id)].context.trace_id != request.get_span_context().trace_id

    steps = [s for s in _named(found, "step ")
             if s.parent and s.parent.span_id == process.context.span_id]  # fmt: skip
    assert [(s.name, s.attributes["pulser_ops.step.kind"]) for s in steps] == [
        ("step prepare", "shell"), ("step fail", "shell")]
    assert steps[0].status.status_code != StatusCode.ERROR
    assert steps[1].status.status_code == StatusCode.ERROR
    settles = [s for s in _named(found, "settle")
               if s.parent and s.parent.span_id == process.context.span_id]  # fmt: skip
    assert len(settles) == 1 and settles[0].attributes["messaging.operation.type"] == "settle"


def test_off_until_instrumented(client: Client) -> None:
    client.templates.upsert({"name": "plain"})
    assert "_trace" not in client.runs.create("plain").params
    assert not tracing.enabled()
