"""Every option that takes a path, given a name no file system can hold (5,000 characters):
one ``error:`` line, never an OSError traceback. The hostile CLI suite found such paths by
chance (``speckit validate``, ``init --dir``, then ``speckit validate --md-out``); this asks every
path option on purpose."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli.helpers import Cli, assert_one_error

TOO_LONG = "x" * 5000


def _cases(tmp: Path) -> dict[str, list[str]]:
    return {
        "enqueue --params-file": ["enqueue", "greet", "--params-file", TOO_LONG],
        "runs export --output": ["runs", "export", "--output", f"{TOO_LONG}/runs.json"],
        "templates apply": ["templates", "apply", TOO_LONG],
        "schedules apply": ["schedules", "apply", TOO_LONG],
        "worker --config": ["worker", "--config", TOO_LONG],
        "init --dir": ["init", "--dir", TOO_LONG],
        "alerts --rules": ["alerts", "--once", "--rules", TOO_LONG],
        "speckit generate --out": ["speckit", "generate", "--name", "acme", "--description",
                                   "d", "--out", TOO_LONG],
        "speckit generate --zip": ["speckit", "generate", "--name", "acme", "--description",
                                   "d", "--out", str(tmp / "kit"), "--zip", f"{TOO_LONG}/k.zip"],
        "speckit generate --params-file": ["speckit", "generate", "--out", str(tmp / "kit2"),
                                           "--params-file", TOO_LONG],
        "speckit validate": ["speckit", "validate", TOO_LONG],
        "speckit validate --json-out": ["speckit", "validate", str(tmp / "kits" / "acme"),
                                        "--json-out", f"{TOO_LONG}/r.json"],
        "speckit validate --md-out": ["speckit", "validate", str(tmp / "kits" / "acme"),
                                      "--md-out", f"{TOO_LONG}/r.md"],
        "speckit comment --report": ["speckit", "comment", "--report", TOO_LONG],
    }  # fmt: skip


CASES = sorted(_cases(Path("/tmp")))


@pytest.mark.parametrize("case", CASES)
def test_a_path_no_file_system_can_hold_is_one_error_line(
    cli: Cli, tmp_path: Path, case: str
) -> None:
    kit = tmp_path / "kits" / "acme"  # enough of a kit for validate to write its report
    kit.mkdir(parents=True)
    (kit / "constitution.md").write_text("# Constitution\n")
    assert_one_error(cli(*_cases(tmp_path)[case]))
