"""Bad input is refused with one clear, typed error, before anything is used or written."""

from __future__ import annotations

import io
import os
import stat
import zipfile
from pathlib import Path

import pytest

from pulser_ops.errors import InvalidInput, NotFound
from pulser_ops.speckit.model import parse_params
from pulser_ops.speckit.report import Source
from pulser_ops.speckit.source import open_path, read_zip
from pulser_ops.speckit.validate import validate
from tests.speckit.kits import PARAMS, kit


def _zip(members: dict[str, bytes], *, symlink: str | None = None) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, body in members.items():
            zf.writestr(name, body)
        if symlink:
            info = zipfile.ZipInfo(symlink)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            zf.writestr(info, "/etc/passwd")
    return buf.getvalue()


def _write(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)


def test_missing_path(tmp_path: Path) -> None:
    with pytest.raises(NotFound, match="no such file or directory"):
        open_path(tmp_path / "nope")


def test_a_path_the_file_system_cannot_name_is_one_clear_error() -> None:
    """Found by the hostile CLI suite: a 70,000-character path raised OSError (name too long)
    out of ``pulser-ops speckit validate``."""
    with pytest.raises(InvalidInput, match=r"cannot be read \(File name too long\)") as e:
        open_path("x" * 5000)
    assert len(str(e.value)) < 300


def test_a_folder_without_a_kit(tmp_path: Path) -> None:
    (tmp_path / "README.md").write_text("# hi\n")
    with pytest.raises(NotFound, match="no spec kit in"):
        validate(open_path(tmp_path), Source(kind="path", location=str(tmp_path)))


@pytest.mark.parametrize("member", ["../x", "spec/../../x", "/etc/passwd", "a\\..\\b", "a//b"])
def test_zip_with_an_escaping_member_is_refused_whole(member: str) -> None:
    good = {d.path: d.content.encode() for d in kit().documents}
    with pytest.raises(InvalidInput, match=r"refused: .* is not a safe relative path"):
        read_zip(_zip({**good, member: b"x"}))


def test_zip_with_a_symlink_is_refused() -> None:
    with pytest.raises(InvalidInput, match="symbolic link"):
        read_zip(_zip({"spec/a/prd.md": b"# x"}, symlink="spec/a/plan.md"))


def test_a_50_mb_file_is_refused_without_reading_it(tmp_path: Path) -> None:
    kit_dir = tmp_path / "spec" / "big"
    kit_dir.mkdir(parents=True)
    for d in kit().documents:
        (kit_dir / d.path.rsplit("/", 1)[1]).write_text(d.content)
    with (kit_dir / "prd.md").open("wb") as f:  # sparse: 50 MB on paper, nothing on disk
        f.truncate(50 * 1024 * 1024)
    with pytest.raises(InvalidInput, match=r"prd.md is 52,428,800 bytes; the limit is 1,048,576"):
        validate(open_path(tmp_path), Source(kind="path", location="."))


def test_a_50_mb_zip_and_a_50_mb_member_are_refused(tmp_path: Path) -> None:
    big = tmp_path / "kit.zip"
    with big.open("wb") as f:
        f.truncate(50 * 1024 * 1024)
    with pytest.raises(InvalidInput, match="52,428,800 bytes; the limit is 16,777,216"):
        open_path(big)
    # a small archive whose member inflates to 50 MB (a zip bomb) is refused by size
    bomb = io.BytesIO()
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("spec/a/prd.md", b"\0" * (50 * 1024 * 1024))
    assert len(bomb.getvalue()) < 1024 * 1024
    with pytest.raises(InvalidInput, match=r"member 'spec/a/prd.md' is 52,428,800 bytes"):
        read_zip(bomb.getvalue())


def test_binary_junk_is_not_a_kit(tmp_path: Path) -> None:
    junk = tmp_path / "junk.bin"
    junk.write_bytes(os.urandom(4096))
    with pytest.raises(InvalidInput, match="neither a directory nor a zip archive"):
        open_path(junk)
    with pytest.raises(InvalidInput, match="not a zip archive"):
        read_zip(os.urandom(4096), "artifact spec-kit.zip")


def test_a_binary_document_is_a_finding(tmp_path: Path) -> None:
    _write(tmp_path, {d.path: d.content for d in kit().documents})
    (tmp_path / "spec/acme-notes/plan.md").write_bytes(b"\x00\xff\xfe junk")
    report = validate(open_path(tmp_path), Source(kind="path", location="."))
    assert [f.rule for f in report.findings if f.severity == "error"] == ["file.not-text"]


def test_symlink_out_of_the_tree_is_refused(tmp_path: Path) -> None:
    outside = tmp_path / "secret.md"
    outside.write_text("secret")
    root = tmp_path / "repo"
    _write(root, {d.path: d.content for d in kit().documents})
    (root / "spec/acme-notes/plan.md").unlink()
    (root / "spec/acme-notes/plan.md").symlink_to(outside)
    with pytest.raises(InvalidInput, match="symbolic link out of"):
        validate(open_path(root), Source(kind="path", location="repo"))


@pytest.mark.parametrize(
    "name", ["../x", "a/b", ".", "..", ".hidden", "a..b", "", "x" * 65, "a b", "é"]
)
def test_a_name_that_is_not_a_safe_path_segment(name: str) -> None:
    with pytest.raises(InvalidInput, match=r"^name: .* not a safe path segment"):
        parse_params({**PARAMS, "name": name})


def test_feature_folder_is_read_from_its_repository(tmp_path: Path) -> None:
    _write(tmp_path, {d.path: d.content for d in kit("speckit").documents})
    opened = open_path(tmp_path / "specs" / "001-acme-notes")
    report = validate(opened, Source(kind="path", location="specs/001-acme-notes"))
    assert [k.root for k in report.kits] == [f"{tmp_path}/specs/001-acme-notes"]
    assert report.summary.errors == 0
    assert report.kits[0].files["constitution"] == f"{tmp_path}/.specify/memory/constitution.md"
