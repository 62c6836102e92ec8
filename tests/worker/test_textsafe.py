"""What the worker does to text PostgreSQL cannot store: marks it, visibly, and nothing else."""

from __future__ import annotations

import json

from pulser_ops.values import MAX_JSON_DEPTH, plain_json
from pulser_ops.worker.textsafe import safe_json, safe_text, storable


def test_clean_text_is_returned_as_is() -> None:
    for text in ("", "plain", "héllo wörld ✓", "emoji \U0001f600", "tab\tand\nnewline"):
        assert safe_text(text) is text
        assert storable(text)


def test_nul_and_lone_surrogates_are_marked() -> None:
    assert safe_text("a\x00b") == "a\u2400b"
    assert safe_text("é\x00") == "é\u2400"
    assert safe_text("x\udcff") == "x\ufffd"  # from surrogateescape decoding
    assert safe_text("\ud800 then \udc00") == "\ufffd then \ufffd"  # halves, not a pair
    assert safe_text("pair \ud83d\ude00") == "pair \U0001f600"  # a pair is joined
    for text in ("a\x00b", "x\udcff", "\ud800"):
        assert not storable(text)
        safe_text(text).encode("utf-8")  # now encodable


def test_json_values_become_jsonb_safe() -> None:
    value = {
        "s": "a\x00",
        1: [b"\xff\x00", float("nan"), float("inf"), 2.5, True, None, {"k\udcff": ("t",)}],
        "o": object,
    }
    out = safe_json(value)
    assert out["s"] == "a\u2400"
    assert out["1"][:6] == ["\ufffd\u2400", "nan", "inf", 2.5, True, None]
    assert out["1"][6] == {"k\ufffd": ["t"]}
    assert out["o"] == str(object)
    json.dumps(out, allow_nan=False).encode("utf-8")


def test_nesting_deeper_than_the_sdk_sends_becomes_a_note() -> None:
    deep: list[object] = []
    for _ in range(100_000):
        deep = [deep]
    out = safe_json(deep)
    plain_json(out)  # what the SDK sends: within its depth limit
    depth, inner = 0, out
    while isinstance(inner, list):
        depth, inner = depth + 1, inner[0]
    assert (depth, inner) == (MAX_JSON_DEPTH - 1, {"unserialisable": "nested too deeply"})
    shallow = [[[1]]]
    assert safe_json(shallow) == shallow
