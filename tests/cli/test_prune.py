"""``pulser-ops prune``: finished runs and all they own go; everything else stays."""

from __future__ import annotations

from pathlib import Path

import pulser_ops
from tests.cli.helpers import Cli, assert_ok, assert_one_error, count, finish


def test_prune_deletes_finished_runs_with_their_rows_and_files(
    cli: Cli, client: pulser_ops.Client, db_url: str, storage_dir: Path
) -> None:
    for i in range(5):
        client.runs.create("greet", {"name": f"done{i}"})
        run_id = finish(client, "B")
        client.events.log(run_id, "something happened")
        client.artifacts.put(run_id, "big.bin", b"x" * 100_000)  # a file in storage
    keep = client.runs.create("greet", {"name": "queued"})
    files = list((storage_dir / "run-artifacts").rglob("big.bin"))
    assert len(files) == 5

    # nothing is that old yet: nothing goes
    assert "pruned 0 run(s)" in assert_ok(cli("prune", "--older-than", "7d", "--yes")).stdout
    assert count(db_url, "runs") == 6

    result = assert_ok(cli("prune", "--older-than", "0s", "--batch", "2", "--yes"))
    assert "pruned 5 run(s)" in result.stdout
    assert [str(r.id) for r in client.runs.list()] == [str(keep.id)]
    assert count(db_url, "run_events", f"run_id <> '{keep.id}'") == 0
    assert count(db_url, "artifacts") == 0
    assert not any(f.exists() for f in files)


def test_prune_needs_yes_without_a_terminal_and_a_duration(
    cli: Cli, client: pulser_ops.Client, db_url: str
) -> None:
    client.runs.create("greet", {"name": "x"})
    finish(client, "B")
    assert_one_error(cli("prune", "--older-than", "0s"), "--yes")
    assert_one_error(cli("prune", "--older-than", "a while", "--yes"), "--older-than")
    assert count(db_url, "runs") == 1
