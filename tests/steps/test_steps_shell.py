"""Shell steps against real processes: params safety, streaming, timeout, cancel, kill."""

from __future__ import annotations

import signal
import time
from functools import partial
from pathlib import Path
from typing import Any

from pulser_ops.steps import RecordedEvent, RecordingContext, StepOptions, parse_step, run_step
from tests.steps.steps_helpers import pid_gone, wait_until


def shell(**fields: Any) -> Any:
    return parse_step({"kind": "shell", "name": "sh", **fields})


EVIL = {
    "semi": '\'; rm -rf "$PULSER_WORKDIR/canary" #',
    "subst": "$(touch pwned-subst)",
    "tick": "`touch pwned-tick`",
    "amp": "x && touch pwned-amp",
}


def assert_nothing_executed(workdir: Path) -> None:
    assert (workdir / "canary").exists(), "the rm in a param value was executed"
    assert sorted(p.name for p in workdir.iterdir() if p.name.startswith("pwned")) == []


def test_argv_command_gets_params_as_whole_elements(ctx: RecordingContext) -> None:
    ctx.params = dict(EVIL)
    (ctx.workdir / "canary").write_text("keep me")
    argv = ["printf", "[%s]\\n"] + [f"{{{{ params.{k} }}}}" for k in EVIL]
    outcome = run_step(shell(command=argv), ctx)
    assert outcome.status == "succeeded", outcome.error
    assert ctx.log_lines("stdout") == [f"[{v}]" for v in EVIL.values()]
    assert_nothing_executed(ctx.workdir)


def test_sh_c_reads_params_from_env_only(ctx: RecordingContext) -> None:
    ctx.params = dict(EVIL)
    (ctx.workdir / "canary").write_text("keep me")
    # Deliberately sloppy script: unquoted expansions still never execute the values.
    script = (
        'printf "%s\\n" "$PULSER_PARAM_SEMI" "$PULSER_PARAM_SUBST"; '
        "echo $PULSER_PARAM_TICK; echo $PULSER_PARAM_AMP; "
        'echo "$PULSER_PARAMS_JSON"'
    )
    outcome = run_step(shell(command=script), ctx)
    assert outcome.status == "succeeded", outcome.error
    lines = ctx.log_lines("stdout")
    assert lines[:4] == [EVIL["semi"], EVIL["subst"], EVIL["tick"], EVIL["amp"]]
    assert '"subst":"$(touch pwned-subst)"' in lines[4]
    assert_nothing_executed(ctx.workdir)


def test_env_identity_cwd_and_step_env(ctx: RecordingContext) -> None:
    (ctx.workdir / "sub").mkdir()
    ctx.params = {"who": "ops"}
    outcome = run_step(
        shell(
            command='echo "$PULSER_RUN_ID $PULSER_ATTEMPT $GREETING"; pwd',
            cwd="sub",
            env={"GREETING": "hello {{ params.who }}"},
        ),
        ctx,
    )
    assert outcome.status == "succeeded"
    assert ctx.log_lines("stdout") == [
        f"{ctx.run_id} 1 hello ops",
        str(ctx.workdir / "sub"),
    ]


def test_exit_code_and_ok_exit_codes(ctx: RecordingContext) -> None:
    bad = run_step(shell(command="echo oops >&2; exit 3"), ctx)
    assert (bad.status, bad.exit_code, bad.error_class) == ("failed", 3, "step_failed")
    assert "exit code 3" in (bad.error or "")
    assert ctx.log_lines("stderr") == ["oops"]
    tolerated = run_step(shell(command="exit 3", ok_exit_codes=[0, 3], name="t"), ctx)
    assert (tolerated.status, tolerated.exit_code) == ("succeeded", 3)


def test_output_is_streamed_in_bounded_batches(ctx: RecordingContext) -> None:
    outcome = run_step(shell(command=["seq", "1", "250"]), ctx)
    assert outcome.status == "succeeded"
    events = ctx.log_events("stdout")
    assert len(events) >= 3
    assert all(e.data["lines"] <= 100 and e.data["step"] == "sh" for e in events)
    assert ctx.log_lines("stdout") == [str(i) for i in range(1, 251)]
    log = ctx.artifacts["sh.log"]
    assert log.kind == "log" and log.text.splitlines() == [str(i) for i in range(1, 251)]


def test_lines_are_emitted_while_the_process_still_runs(ctx: RecordingContext) -> None:
    """The script waits (up to 10 s) for a file that only the emit callback creates."""
    go = ctx.workdir / "go"

    def on_emit(event: RecordedEvent) -> None:
        if event.kind == "log" and "ready" in event.message.split("\n"):
            go.touch()

    ctx.on_emit = on_emit
    script = (
        "echo ready; i=0; "
        'while [ ! -e "$PULSER_WORKDIR/go" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done; '
        'if [ -e "$PULSER_WORKDIR/go" ]; then echo got-go; else echo no-go; fi'
    )
    outcome = run_step(shell(command=script), ctx)
    assert outcome.status == "succeeded"
    assert ctx.log_lines("stdout") == ["ready", "got-go"]


def test_stdout_and_stderr_events_are_labelled(ctx: RecordingContext) -> None:
    outcome = run_step(shell(command="echo out; echo err >&2"), ctx)
    assert outcome.status == "succeeded"
    assert ctx.log_lines("stdout") == ["out"]
    assert ctx.log_lines("stderr") == ["err"]


def test_log_tail_is_bounded(ctx: RecordingContext) -> None:
    outcome = run_step(
        shell(command=["seq", "1", "20000"]), ctx, options=StepOptions(log_tail_bytes=1000)
    )
    assert outcome.status == "succeeded"
    text = ctx.artifacts["sh.log"].text
    assert text.startswith("[… ") and "bytes of earlier output dropped" in text
    assert text.rstrip("\n").endswith("\n20000")
    assert len(text.encode()) < 1100


def test_timeout_stops_the_process(ctx: RecordingContext) -> None:
    outcome = run_step(shell(command=["sleep", "300"], timeout_seconds=0.3), ctx)
    assert outcome.status == "failed"
    assert outcome.error_class == "step_timeout"
    assert outcome.exit_code == -signal.SIGTERM
    assert outcome.duration_seconds < 30  # far below the 300 s sleep


def cancel_when(ctx: RecordingContext, line: str) -> None:
    def on_emit(event: RecordedEvent) -> None:
        if event.kind == "log" and line in event.message.split("\n"):
            ctx.cancel_token.set()

    ctx.on_emit = on_emit


def test_cancel_sends_sigterm_and_keeps_partial_log(ctx: RecordingContext) -> None:
    cancel_when(ctx, "ready")
    outcome = run_step(shell(command="echo first; echo ready; sleep 300"), ctx)
    assert outcome.status == "cancelled"
    assert outcome.error_class == "step_cancelled" and outcome.retryable is False
    assert outcome.exit_code == -signal.SIGTERM
    assert outcome.result["sigkilled"] is False
    assert outcome.duration_seconds < 30
    assert ctx.artifacts["sh.log"].text.splitlines() == ["first", "ready"]
    assert outcome.artifacts == ("sh.log",)


def test_cancel_escalates_to_sigkill_when_sigterm_is_ignored(ctx: RecordingContext) -> None:
    cancel_when(ctx, "ready")
    started = time.monotonic()
    outcome = run_step(
        shell(command="trap '' TERM; echo ready; sleep 300", kill_grace_seconds=0.5), ctx
    )
    assert outcome.status == "cancelled"
    assert outcome.exit_code == -signal.SIGKILL
    assert outcome.result["sigkilled"] is True
    assert time.monotonic() - started < 30
    assert ctx.artifacts["sh.log"].text.splitlines() == ["ready"]


def test_cancel_kills_the_whole_process_group(ctx: RecordingContext) -> None:
    """sh → sh → sleep: the grandchild must die too, not just the leader."""
    cancel_when(ctx, "ready")
    script = (
        "sh -c 'sleep 300 & echo $! > \"$PULSER_WORKDIR/grandchild.pid\"; wait' & "
        'echo $! > "$PULSER_WORKDIR/child.pid"; '
        'while [ ! -s "$PULSER_WORKDIR/grandchild.pid" ]; do sleep 0.05; done; '
        "echo ready; wait"
    )
    outcome = run_step(shell(command=script), ctx)
    assert outcome.status == "cancelled"
    pids = [int((ctx.workdir / f).read_text()) for f in ("child.pid", "grandchild.pid")]
    for pid in pids:
        assert wait_until(partial(pid_gone, pid)), f"pid {pid} survived the cancel"


def test_leftover_background_children_do_not_hang_the_step(ctx: RecordingContext) -> None:
    """The leader exits at once but a background child keeps stdout open."""
    outcome = run_step(
        shell(command='sleep 300 & echo $! > "$PULSER_WORKDIR/bg.pid"; echo done'), ctx
    )
    assert outcome.status == "succeeded"
    assert ctx.log_lines("stdout") == ["done"]
    bg = int((ctx.workdir / "bg.pid").read_text())
    assert wait_until(lambda: pid_gone(bg))


def test_missing_executable_is_a_missing_dependency(ctx: RecordingContext) -> None:
    outcome = run_step(shell(command=["definitely-not-a-real-binary-xyz"]), ctx)
    assert outcome.status == "failed"
    assert outcome.error_class == "missing_dependency"
    assert "definitely-not-a-real-binary-xyz" in (outcome.error or "")


def test_unknown_param_fails_the_step_without_running(ctx: RecordingContext) -> None:
    outcome = run_step(shell(command=["touch", "{{ params.nope }}"]), ctx)
    assert outcome.status == "failed"
    assert outcome.error_class == "template_error" and outcome.retryable is False
    assert "unknown param 'nope'" in (outcome.error or "")
    assert list(ctx.workdir.iterdir()) == []


def test_step_events_bracket_the_run(ctx: RecordingContext) -> None:
    run_step(shell(command="true"), ctx)
    steps = [e for e in ctx.events if e.kind == "step"]
    assert [e.data["status"] for e in steps] == ["running", "succeeded"]
    assert steps[1].data["exit_code"] == 0


def test_already_cancelled_run_does_not_start_the_step(ctx: RecordingContext) -> None:
    ctx.cancel_token.set()
    outcome = run_step(shell(command='touch "$PULSER_WORKDIR/ran"'), ctx)
    assert outcome.status == "cancelled" and outcome.error_class == "step_cancelled"
    assert not (ctx.workdir / "ran").exists()


def test_output_that_is_not_utf8_text_keeps_its_bytes_in_the_log_artifact(
    ctx: RecordingContext,
) -> None:
    outcome = run_step(shell(command="printf 'ok\\n'; printf 'a\\000b\\n'; printf '\\377\\n'"), ctx)
    assert outcome.status == "succeeded"
    log = ctx.artifacts["sh.log"]
    assert log.data == b"ok\na\x00b\n\xff\n"  # raw, a file: nothing rewritten
    assert log.content_type == "text/plain"
    # Events carry it decoded (NUL is marked later, on the worker's way to the database).
    assert ctx.log_lines("stdout") == ["ok", "a\x00b", "\ufffd"]
    clean = run_step(shell(command="echo héllo", name="t"), ctx)
    assert clean.status == "succeeded"
    assert ctx.artifacts["t.log"].data == "héllo\n"
    assert ctx.artifacts["t.log"].content_type == "text/plain; charset=utf-8"


def test_a_huge_line_is_one_truncated_event_line(ctx: RecordingContext) -> None:
    outcome = run_step(
        shell(command="head -c 3000000 /dev/zero | tr '\\000' y; echo; echo next"), ctx
    )
    assert outcome.status == "succeeded"
    lines = ctx.log_lines("stdout")
    assert len(lines) == 2 and lines[1] == "next"
    assert lines[0].startswith("yyy") and lines[0].endswith("…[line truncated]")
    assert len(lines[0].encode()) <= StepOptions().max_event_message_bytes
    assert outcome.result is not None and outcome.result["lines"] == 2
    tail = ctx.artifacts["sh.log"].data
    assert isinstance(tail, str) and tail.endswith("yyy\nnext\n")  # the line, not cut into pieces
    assert "y\ny" not in tail
