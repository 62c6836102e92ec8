"""Docker steps: without a reachable engine they fail clearly (no fake success)."""

from __future__ import annotations

import socket

import pytest

from pulser_ops.steps import RecordingContext, StepOptions, parse_step, run_step
from pulser_ops.steps.docker_step import ping_engine

SPEC = {"kind": "docker", "name": "dk", "image": "alpine:3.20", "command": ["echo", "hi"]}


@pytest.fixture
def no_engine(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A unix socket path where no daemon listens (this machine has no Docker engine)."""
    host = "unix:///var/run/docker.sock"
    if ping_engine(host) is None:
        pytest.skip("a Docker engine is reachable here; this test needs its absence")
    return host


def test_missing_engine_is_a_clear_missing_dependency(
    ctx: RecordingContext, no_engine: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DOCKER_HOST", raising=False)
    outcome = run_step(parse_step(SPEC), ctx)
    assert outcome.status == "failed"
    assert outcome.error_class == "missing_dependency" and outcome.retryable is True
    assert outcome.error == (
        "docker step needs a reachable Docker engine "
        "(no daemon at unix:///var/run/docker.sock; set DOCKER_HOST)"
    )
    [event] = [e for e in ctx.events if e.kind == "step" and "detail" in e.data]
    assert event.level == "error" and "socket does not exist" in event.data["detail"]
    assert ctx.artifacts == {}  # nothing ran


def test_unreachable_docker_host_names_the_variable(
    ctx: RecordingContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv("DOCKER_HOST", f"tcp://127.0.0.1:{port}")
    outcome = run_step(parse_step(SPEC), ctx)
    assert outcome.status == "failed" and outcome.error_class == "missing_dependency"
    assert f"no daemon at tcp://127.0.0.1:{port}; check DOCKER_HOST" in (outcome.error or "")


def test_base_env_docker_host_is_honoured(ctx: RecordingContext, no_engine: str) -> None:
    options = StepOptions(base_env={"PATH": "/usr/bin:/bin", "DOCKER_HOST": "unix:///nope.sock"})
    outcome = run_step(parse_step(SPEC), ctx, options=options)
    assert outcome.error_class == "missing_dependency"
    assert "unix:///nope.sock" in (outcome.error or "")
