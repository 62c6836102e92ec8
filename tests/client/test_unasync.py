"""``scripts/unasync.py``: the generated sync client is never stale, and the generator refuses
what it cannot translate."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.client import ROOT, load_unasync

unasync = load_unasync()
PAIR = unasync.PAIRS[0]


def test_the_generated_sync_client_is_up_to_date() -> None:
    problems = unasync.check(ROOT)
    assert problems == [], "stale: run `python scripts/unasync.py`\n" + "".join(problems)


def test_the_check_command_passes_on_this_tree() -> None:
    done = subprocess.run(
        [sys.executable, "scripts/unasync.py", "--check"],
        cwd=ROOT, capture_output=True, text=True, check=False,
    )
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")


def test_the_generated_file_says_it_is_generated() -> None:
    text = (ROOT / PAIR.target).read_text()
    first = text.splitlines()[0]
    assert first.startswith("# GENERATED FROM src/pulser_ops/client/_async/client.py")
    assert "DO NOT EDIT" in first


def _tree(tmp_path: Path) -> Path:
    """A copy of the generator's input and output under ``tmp_path``."""
    for rel in (PAIR.source, PAIR.target):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / rel, tmp_path / rel)
    return tmp_path


def test_an_edit_of_the_source_alone_is_caught_and_regenerating_fixes_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = _tree(tmp_path)
    source = root / PAIR.source
    source.write_text(source.read_text().replace(
        "    async def get_many(self, run_ids: Items[Id]) -> builtins.list[m.Run]:\n",
        "    async def get_many(self, run_ids: Items[Id], *, fresh: bool = False)"
        " -> builtins.list[m.Run]:\n", 1))
    [diff] = unasync.check(root)
    assert (
        "+    def get_many(self, run_ids: Items[Id], *, fresh: bool = False)"
        " -> builtins.list[m.Run]:" in diff
    )
    assert unasync.main(["--check", "--root", str(root)]) == 1
    assert "fresh: bool = False" in capsys.readouterr().out
    assert unasync.main(["--root", str(root)]) == 0
    assert unasync.check(root) == []
    assert "def get_many(self, run_ids: Items[Id], *, fresh: bool = False)" in (
        root / PAIR.target).read_text()


def test_a_hand_edit_of_the_generated_file_is_caught(tmp_path: Path) -> None:
    root = _tree(tmp_path)
    target = root / PAIR.target
    target.write_text(target.read_text().replace("limit: int = 100", "limit: int = 50", 1))
    [diff] = unasync.check(root)
    assert "-        limit: int = 50," in diff and "+        limit: int = 100," in diff


def test_async_code_without_a_substitution_is_refused(tmp_path: Path) -> None:
    root = _tree(tmp_path)
    source = root / PAIR.source
    source.write_text(source.read_text().replace(
        "    async def close(self) -> None:\n        await self.transport.close()\n",
        "    async def close(self) -> None:\n        async with self.transport:\n"
        "            pass\n", 1))
    with pytest.raises(unasync.UnasyncError, match="still async"):
        unasync.check(root)
    assert unasync.main(["--check", "--root", str(root)]) == 2


def test_imports_stay_sorted_after_renaming() -> None:
    used: set[int] = set()
    [line] = unasync.unasync_lines(
        ["from collections.abc import AsyncIterator, Callable, Iterable"], used)
    assert line == "from collections.abc import Callable, Iterable, Iterator"
    [line] = unasync.unasync_lines(["from .concurrency import AsyncSubscribing, run_blocking"],
                                   used)
    assert line == "from .concurrency import Subscribing, run_blocking"
