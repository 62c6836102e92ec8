"""The alert rules file: defaults with no file, durations, ${VAR} from the environment, and
every kind of mistake reported with its line (pulser_ops.alerts.rules)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pulser_ops.alerts import Rules, parse
from pulser_ops.alerts.rules import URLS_ENV, load, urls_from_env
from pulser_ops.errors import AlertRulesError


def test_no_file_means_the_defaults() -> None:
    assert parse("") == Rules()
    sql = Rules().sql()
    assert sql["reminder_seconds"] == 3600 and sql["keep_days"] == 30
    assert sql["stuck_runs"] == {"enabled": True, "severity": "critical", "after_seconds": 60}
    assert sql["failure_rate"]["threshold"] == 0.5 and sql["queue_age"]["lanes"] == {}


def test_a_file_changes_what_it_names() -> None:
    rules = parse(
        "reminder: 10m\n"
        "board_url: https://ops.example.com\n"
        "notify:\n"
        "  - ${HOOK}\n"
        "  - url: mailto://u:p@example.com\n"
        "    severity: critical\n"
        "    rules: [stuck_runs]\n"
        "rules:\n"
        "  queue_age: {threshold: 2m, lanes: {A: 30s}}\n"
        "  failure_rate: {enabled: false}\n",
        env={"HOOK": "json://127.0.0.1:9/x"},
    )
    assert rules.reminder == 600 and rules.rules.queue_age.threshold == 120
    assert rules.rules.queue_age.lanes == {"A": 30}
    assert rules.sql()["failure_rate"]["enabled"] is False
    hook, mail = rules.notify
    assert hook.url == "json://127.0.0.1:9/x" and hook.wants("queue_age", "warning", "reminder")
    assert mail.wants("stuck_runs", "critical", "firing")
    assert not mail.wants("stuck_runs", "warning", "firing")
    assert not mail.wants("queue_age", "critical", "firing")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("rules:\n  failure_rate:\n    threshold: 1.5\n",
         "line 3: rules.failure_rate.threshold: Input should be less than or equal to 1"),
        ("rules:\n  stuck_runs: {after: 5 minutes}\n",
         "line 2: rules.stuck_runs.after: Value error, not a duration: '5 minutes'"),
        ("interval: 30s\nrules:\n  stuck_run: {after: 5m}\n",
         "line 3: rules.stuck_run: unknown setting"),
        ("rules:\n  stuck_runs: {after: 5m\n",
         "line 2: not valid YAML: while parsing a flow mapping, expected ',' or '}'"),
        ("- a\n- b\n", "line 1: expected a mapping of settings"),
        ("notify:\n  - url: ${NOT_SET_ANYWHERE}\n", "line 2: ${NOT_SET_ANYWHERE} is not set"),
        ("reminder: 1h\nreminder: 2h\n", "line 2: 'reminder' is given twice"),
        ("notify:\n  - json://x\n  - severity: loud\n    url: json://y\n",
         "line 3: notify[1].severity: Input should be 'info', 'warning' or 'critical'"),
        ("delivery:\n  attempts: 0\n", "line 2: delivery.attempts: Input should be greater"),
        ("rules:\n  queue_age:\n    lanes: {E: 5m}\n", "line 3: rules.queue_age.lanes.E"),
    ],
)  # fmt: skip
def test_every_mistake_names_its_line(text: str, message: str) -> None:
    with pytest.raises(AlertRulesError) as raised:
        parse(text, "alerts.yml", env={})
    assert str(raised.value).startswith(f"alerts.yml {message}"), str(raised.value)
    assert raised.value.line == int(message.split()[1].rstrip(":"))
    assert raised.value.code == "alert_rules_error"


def test_urls_from_the_environment() -> None:
    assert urls_from_env({URLS_ENV: "json://a/x, slack://t/b\ndiscord://c/d"}) == [
        "json://a/x", "slack://t/b", "discord://c/d"]
    assert len(Rules().with_urls(["json://a/x"]).notify) == 1
    # the CLI's hostile tests found these raising pydantic's ValidationError
    for url, message in [("", "cannot be empty"), ("  ", "cannot be empty"),
                         ("json://\udcff", "unable to parse raw data as a unicode string")]:
        with pytest.raises(AlertRulesError, match=message):
            Rules().with_urls(["json://a/x", url])


def test_a_rules_file_that_cannot_be_read_or_is_too_deep_is_one_error(tmp_path: Path) -> None:
    binary = tmp_path / "binary.yml"
    binary.write_bytes(b"\xff\xfe\x00rules")
    with pytest.raises(AlertRulesError, match="not UTF-8 text"):
        load(binary)
    with pytest.raises(AlertRulesError, match="nested too deeply"):
        parse("[" * 100_000 + "]" * 100_000, "deep.yml")
    with pytest.raises(AlertRulesError, match="nested too deeply"):
        parse("rules: " + "[" * 100_000 + "]" * 100_000, "deep.yml")
