"""The artifact viewers and the params schema builder: pure functions, no server."""

from __future__ import annotations

import io
import zipfile

import pytest

from pulser_ops.web import schema_builder as sb
from pulser_ops.web import viewers


def test_viewer_choice_and_text_detection() -> None:
    cases = {
        ("a.md", "text/plain"): "markdown", ("x", "text/markdown; charset=utf-8"): "markdown",
        ("a.json", ""): "json", ("x", "application/json"): "json", ("p.png", ""): "image",
        ("x", "image/webp"): "image", ("i.svg", "image/svg+xml"): "svg", ("b.zip", ""): "zip",
        ("page.html", "text/html"): "text", ("run.log", ""): "text", ("x", "application/x"): "binary",
    }  # fmt: skip
    for (name, ctype), want in cases.items():
        assert viewers.viewer_for(name, ctype) == want, (name, ctype)
    assert viewers.viewer_for("data", "", "json") == "json"
    assert viewers.as_text("é".encode() * 3 + "é".encode()[:1]) == "ééé"
    assert viewers.as_text(b"a\x00b") is None


def test_markdown_never_builds_script_or_handlers() -> None:
    hostile = (
        "<script>alert(1)</script>\n\n<img src=x onerror=alert(2)>\n\n"
        "[a](javascript:alert(3)) [b](JaVaScRiPt:alert(4)) [c](vbscript:x) [d](data:text/html,x)\n\n"
        "<iframe src=https://evil></iframe> <a href=\"javascript:alert(5)\">x</a>\n\n"
        "![i](javascript:alert(6)) ![j](https://evil/pixel.png) ![k](../../other/run.png)"
    )
    html = str(viewers.markdown(hostile, lambda url, image: "/ok/" + url))
    import re

    tags = re.findall(r"<[a-z][^>]*>", html)
    assert tags, html
    for tag in tags:
        assert not re.search(r"script|iframe|onerror|javascript:|vbscript:|data:", tag, re.I), tag
    assert '<a href="https://evil/pixel.png" rel="noopener noreferrer nofollow">[image: j]</a>' in html


def test_json_tree_escapes_and_caps() -> None:
    tree = str(viewers.json_tree({"<k>": "<v>", "n": [1, 2.5, None, False]}))
    assert "&lt;k&gt;" in tree and "&lt;v&gt;" in tree and "<k>" not in tree
    big = str(viewers.json_tree(list(range(10)), max_nodes=5))
    assert "cut: more than" in big


def test_zip_entries_and_bounded_reads() -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("a/big.txt", "x" * 100_000)
        z.writestr("empty/", "")
    entries, total = viewers.zip_entries(buf.getvalue())
    assert [(e.name, e.size, e.is_dir) for e in entries] == [("a/big.txt", 100_000, False),
                                                              ("empty/", 0, True)]
    assert total == 2 and viewers.zip_entries(buf.getvalue(), limit=1)[1] == 2
    data, size = viewers.zip_read(buf.getvalue(), "a/big.txt", 10)
    assert (data, size) == (b"x" * 10, 100_000)
    with pytest.raises(KeyError):
        viewers.zip_read(buf.getvalue(), "nope", 10)


def test_diffs() -> None:
    a, b = ["one", "two", "three"], ["one", "2", "three", "four"]
    rows = [r for r in viewers.split_diff(a, b) if r is not None]
    assert [(r.tag, r.left, r.right) for r in rows] == [
        ("equal", "one", "one"), ("replace", "two", "2"), ("equal", "three", "three"),
        ("insert", None, "four")]
    assert [c for c, _ in viewers.unified_diff(a, b, "a", "b")] == [
        "head", "head", "hunk", "ctx", "del", "add", "ctx", "add"]
    # JSON compares by value, not by key order or spacing
    assert viewers.diff_lines(b'{"b":1,"a":2}') == viewers.diff_lines(b'{ "a": 2, "b": 1 }')
    assert viewers.diff_lines(b"\x00\x01") is None


SCHEMA = {
    "type": "object", "additionalProperties": False, "required": ["name"], "title": "Greeting",
    "properties": {
        "name": {"type": "string", "minLength": 1, "description": "who"},
        "count": {"type": "integer", "default": 1, "minimum": 0},
        "mood": {"type": "string", "enum": ["calm", "loud"]},
        "tags": {"type": "array", "items": {"type": "string"}},
    },
}  # fmt: skip


def test_schema_round_trips_through_the_builder_rows() -> None:
    rows, allow_other, rest = sb.rows_from_schema(SCHEMA)
    assert [(r.name, r.type, r.required, r.default, r.enum) for r in rows] == [
        ("name", "string", True, "", ""), ("count", "integer", False, "1", ""),
        ("mood", "string", False, "", "calm, loud"), ("tags", "array", False, "", "")]
    assert rows[0].extra == {"minLength": 1} and not allow_other and rest == {"title": "Greeting"}
    again, problems = sb.schema_from_rows(rows, allow_other, rest)
    assert problems == [] and again == SCHEMA


BUILDER_PROBLEMS = [
    (sb.FieldRow(name="9lives"), "name"),
    (sb.FieldRow(name="n", type="integer", default="ten"), "default"),
    (sb.FieldRow(name="n", type="integer", enum="1, two"), "enum"),
    (sb.FieldRow(name="", description="orphan"), "name"),
    (sb.FieldRow(name="b", type="boolean", default="yes"), "default"),
]  # fmt: skip


@pytest.mark.parametrize(("row", "field"), BUILDER_PROBLEMS)
def test_builder_names_the_bad_cell(row: sb.FieldRow, field: str) -> None:
    _, problems = sb.schema_from_rows([row], True)
    assert [(p.row, p.field) for p in problems] == [(0, field)]


def test_builder_rows_come_from_the_posted_form() -> None:
    form = {"f-0-name": "name", "f-0-type": "string", "f-0-required": "on",
            "f-2-name": "n", "f-2-type": "integer", "f-2-default": "3", "f-2-enum": "1, 2, 3",
            "f-2-extra": '{"minimum": 1}'}  # fmt: skip
    schema, problems = sb.schema_from_rows(sb.rows_from_form(form), allow_other=True)
    assert problems == []
    assert schema == {"type": "object", "required": ["name"], "properties": {
        "name": {"type": "string"},
        "n": {"type": "integer", "enum": [1, 2, 3], "default": 3, "minimum": 1}}}  # fmt: skip


def test_run_form_params_are_typed_by_the_schema() -> None:
    form = {"p.name": "ops", "p.count": "7", "p.mood": "loud", "p.tags": '["a"]'}
    assert sb.params_from_form(SCHEMA, form) == (
        {"name": "ops", "count": 7, "mood": "loud", "tags": ["a"]}, {})
    # empty boxes are left out (defaults apply); bad numbers go as typed, for the SQL to name
    assert sb.params_from_form(SCHEMA, {"p.name": "", "p.count": "seven"}) == (
        {"count": "seven"}, {})
    assert sb.params_from_form(SCHEMA, {"p.tags": "[oops"}) == ({}, {"tags": "not valid JSON"})
    fields = {f.name: f for f in sb.run_fields(SCHEMA)}
    assert fields["mood"].input == "select" and fields["count"].value == "1"
    assert fields["tags"].input == "json" and fields["name"].required


def test_markdown_tables_align_with_classes_not_styles() -> None:
    html = str(viewers.markdown("| a | b |\n|:--|--:|\n| 1 | 2 |\n"))
    assert "style=" not in html
    assert '<th class="align-left">a</th>' in html and '<td class="align-right">2</td>' in html
