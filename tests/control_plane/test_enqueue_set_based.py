"""enqueue_runs, set-based, against the loop it replaced (the oracle) and the walker its compiled
schemas stand in for.

The oracle is the loop's own SQL, read from the last migration that defined it and created
under another name in the test's transaction: random batches (bad items among good ones,
idempotency keys, sessions, operators) must give the same runs or the same error, code,
message and detail. Two inputs the SDK cannot send are answered better now and left out:
an item without a template (the loop failed on a not-null constraint) and a priority or
max_attempts too big for an integer (it raised "integer out of range"; now the range message).
"""

from __future__ import annotations

import json
import random
import re
from pathlib import Path
from typing import Any

import psycopg
import pytest

MIGRATIONS = Path(__file__).resolve().parents[2] / "supabase" / "migrations"
SET_BASED = "20261201610000"
OP = "11111111-1111-1111-1111-111111111111"
OTHER = "22222222-2222-2222-2222-222222222222"
S_OP, S_OTHER, S_NOBODY = (f"aaaaaaaa-0000-0000-0000-00000000000{i}" for i in (1, 2, 3))
KEPT = ("bbbbbbbb-0000-0000-0000-000000000001", "bbbbbbbb-0000-0000-0000-000000000002")

TEMPLATES: list[dict[str, Any]] = [
    {"name": "t-obj", "params_schema": {"type": "object"}},
    {
        "name": "t-sm",
        "default_lane": "B",
        "params_schema": {
            "type": "object",
            "properties": {
                "n": {"type": "integer", "minimum": 1},
                "tag": {"type": "string", "default": "x"},
            },
            "required": ["n"],
            "additionalProperties": False,
        },
    },
    {
        "name": "t-rich",
        "params_schema": {
            "type": "object",
            "required": ["mode"],
            "properties": {
                "mode": {"enum": ["a", "b", {"x": 1}]},
                "c": {"const": 5},
                "code": {"type": "string", "pattern": "^[a-z]+$", "minLength": 2, "maxLength": 5},
                "tags": {"type": "array", "minItems": 1, "maxItems": 2},
                "ratio": {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1},
                "opt": {"type": ["string", "null"]},
                "deep": {
                    "type": "object",
                    "required": ["k"],
                    "properties": {"k": {"type": "integer", "maximum": 3}},
                    "additionalProperties": False,
                },
                "big": {"type": "integer", "default": 7},
            },
        },
    },
    # Schemas the rules cannot state: checked by the walker, per run, as before.
    {
        "name": "t-walk",
        "params_schema": {
            "type": "object",
            "properties": {
                "items": {"type": "array", "items": {"type": "object", "required": ["id"]}}
            },
        },
    },
    {"name": "t-digits", "params_schema": {"properties": {"0": {"type": "string"}}}},
    {"name": "t-closed", "params_schema": {"additionalProperties": False}},
]
VALUES: list[Any] = [
    None,
    0,
    1,
    2,
    3,
    -1,
    1.5,
    "a",
    "b",
    "",
    "abc",
    "ABC",
    "abcdef",
    [],
    [1],
    [1, 2, 3],
    {},
    {"x": 1},
    {"k": 1},
    {"k": 5},
    {"k": 1, "z": 2},
    True,
    0.5,
    1e40,
    "x\u00e9",
]
KEYS = {
    "t-sm": ["n", "tag", "other"],
    "t-rich": ["mode", "c", "code", "tags", "ratio", "opt", "deep", "big", "zz"],
    "t-walk": ["items"],
    "t-digits": ["0", "1"],
    "t-closed": ["a"],
}
FIELDS: list[tuple[str, list[Any]]] = [
    ("lane", ["A", "B", "D", "Z", 5, None, "a"]),
    ("priority", [0, 5, -100, 101, 1000, "hi", 1.5, 2.0, None]),
    ("max_attempts", [1, 3, 0, 101, "x", 2.5, None]),
    ("run_after", ["2026-01-01T00:00:00Z", "garbage", 5, "now", "2026-13-45", None]),
    ("idempotency_key", ["k1", "k2", "k3", "", "x" * 201, 7, None]),
    ("session_id", [S_OP, S_OTHER, S_NOBODY, "nope", 5, None]),
]


def _params(rng: random.Random, template: Any) -> Any:
    if rng.random() < 0.05:
        return rng.choice([[1], "x", 5, None])
    keys = KEYS.get(template, ["a", "b"]) if isinstance(template, str) else ["a"]
    out: dict[str, Any] = {}
    for k in rng.sample(keys, rng.randint(0, len(keys))):
        out[k] = (
            rng.choice([[{"id": 1}], [{"x": 1}], [1], "no"]) if k == "items" else rng.choice(VALUES)
        )
    return out


def _item(rng: random.Random) -> Any:
    if rng.random() < 0.03:
        return rng.choice(["x", 5, [1], None])
    template = rng.choice(["t-obj", "t-sm", "t-rich", "t-walk", "t-digits", "t-closed", "nope", 5])
    item: dict[str, Any] = {"template": template}
    if rng.random() < 0.9:
        item["params"] = _params(rng, template)
    for field, choices in FIELDS:
        if rng.random() < 0.25:
            item[field] = rng.choice(choices)
    if rng.random() < 0.02:
        item["colour"] = "red"
    return item


def _oracle_sql() -> str:
    """The loop (and its field() helper) as the last migration before the set-based one left
    them, under names of their own."""
    loop = field = None
    for path in sorted(MIGRATIONS.glob("*.sql")):
        if path.name >= SET_BASED:
            break
        text = path.read_text()
        if m := re.search(
            r"^create (?:or replace )?function pulser_ops\.enqueue_runs\(.*?^\$\$;$",
            text,
            re.S | re.M,
        ):
            loop = m.group(0)
        if m := re.search(
            r"^create (?:or replace )?function pulser_ops\.field\(.*?^\$\$;$", text, re.S | re.M
        ):
            field = m.group(0)
    assert loop and field, "the loop and field() are in the migrations before the set-based one"

    def rename(sql: str) -> str:
        sql = re.sub(r"\benqueue_runs\b", "enqueue_runs_loop", sql)
        sql = re.sub(r"\bfield\(", "field_loop(", sql)
        return sql.replace("create function", "create or replace function", 1)

    return rename(field) + "\n" + rename(loop)


def _outcome(conn: psycopg.Connection[Any], fn: str, batch: list[Any]) -> tuple[Any, ...]:
    conn.execute("savepoint probe")
    try:
        rows = conn.execute(
            f"select id::text, template, lane, status, priority, attempt, max_attempts, lease_seconds,"
            f" params, session_id::text, owner_id::text, idempotency_key from {fn}(%s::jsonb)",
            [json.dumps(batch)],
        ).fetchall()
    except psycopg.Error as e:
        conn.execute("rollback to savepoint probe")
        return ("error", e.sqlstate, e.diag.message_primary, e.diag.message_detail)
    conn.execute("rollback to savepoint probe")
    ids = [r[0] for r in rows]
    # New runs by their position in the answer (two items answered with one run share it).
    return ("rows", [(r[0] if r[0] in KEPT else f"new{ids.index(r[0])}", *r[1:]) for r in rows])


def _accepted(loop: tuple[Any, ...], new: tuple[Any, ...]) -> bool:
    """A number too big for an integer: the loop's cast error, now the range message."""
    return loop[:2] == ("error", "22003") and new[0] == "error" and "must be between" in new[2]


@pytest.mark.parametrize("role", ["service", "operator"])
def test_set_based_enqueue_answers_like_the_loop(db_url: str, role: str) -> None:
    rng = random.Random(f"enqueue-{role}")
    with psycopg.connect(db_url) as conn:
        conn.execute(_oracle_sql().encode())
        conn.execute("select public.upsert_templates(%s::jsonb)", [json.dumps(TEMPLATES)])
        conn.execute(
            "insert into public.sessions (id, owner_id, title) values (%s, %s, 'op'), (%s, %s, 'other')",
            [S_OP, OP, S_OTHER, OTHER],
        )
        conn.execute(
            "insert into public.runs (id, template, lane, status, priority, attempt, max_attempts,"
            " lease_seconds, params, idempotency_key, owner_id) values"
            " (%s, 't-obj', 'A', 'queued', 0, 0, 3, 60, '{}', 'k1', null),"
            " (%s, 't-obj', 'A', 'queued', 0, 0, 3, 60, '{\"a\": 1}', 'k2', %s)",
            [KEPT[0], KEPT[1], OP],
        )
        if role == "operator":
            conn.execute(
                "select set_config('request.jwt.claims', %s, true)",
                [json.dumps({"sub": OP, "role": "authenticated"})],
            )
            conn.execute("set local role authenticated")
        compared = errors = 0
        for _ in range(400):
            batch = [_item(rng) for _ in range(rng.randint(1, 4))]
            loop = _outcome(conn, "pulser_ops.enqueue_runs_loop", batch)
            new = _outcome(conn, "public.enqueue_runs", batch)
            assert new == loop or _accepted(loop, new), (batch, loop, new)
            compared += 1
            errors += new[0] == "error"
        conn.rollback()
    # Both kinds of answer were compared, many times.
    assert compared == 400 and 100 < errors < 390


def _schemas(rng: random.Random) -> dict[str, Any]:
    """A random schema of the subset templates may use."""

    def node(depth: int) -> dict[str, Any]:
        s: dict[str, Any] = {}
        if rng.random() < 0.6:
            types = rng.sample(
                ["object", "array", "string", "number", "integer", "boolean", "null"],
                rng.randint(1, 2),
            )
            s["type"] = types[0] if len(types) == 1 else types
        for key, values in (
            ("enum", [["a", 1], [None, {"x": 1}], [[1, 2], "b"]]),
            ("const", [1, "a", {"x": 1}, None]),
            ("minimum", [0, 1.5, -3]),
            ("maximum", [2, 10]),
            ("exclusiveMinimum", [0]),
            ("exclusiveMaximum", [3.5]),
            ("minLength", [1, 2]),
            ("maxLength", [3]),
            ("pattern", ["^[a-z]*$", "b"]),
            ("minItems", [1]),
            ("maxItems", [2]),
        ):
            if rng.random() < 0.12:
                s[key] = rng.choice(values)
        if depth < 2 and rng.random() < 0.5:
            s["properties"] = {
                k: node(depth + 1) for k in rng.sample(["a", "b", "c"], rng.randint(1, 3))
            }
            if rng.random() < 0.5:
                s["required"] = rng.sample(["a", "b", "c", "d"], rng.randint(1, 2))
            if rng.random() < 0.3:
                s["additionalProperties"] = False
        return s

    root = node(0)
    if "type" in root:  # a run's params are always an object
        root["type"] = "object"
    return root


def _value(rng: random.Random, depth: int = 0) -> Any:
    pick = rng.random()
    if depth < 2 and pick < 0.35:
        return {
            k: _value(rng, depth + 1) for k in rng.sample(["a", "b", "c", "d"], rng.randint(0, 4))
        }
    if depth < 2 and pick < 0.45:
        return [_value(rng, depth + 1) for _ in range(rng.randint(0, 3))]
    return rng.choice(
        [None, True, 0, 1, 2, 1.5, -4, 3.5, 11, "a", "ab", "abcd", "B", "b", "", {"x": 1}]
    )


def test_compiled_rules_agree_with_the_schema_walker(db_url: str) -> None:
    """Whatever the rules refuse, schema_violation refuses, and the other way round."""
    rng = random.Random("rules")
    cases: list[tuple[str, Any]] = []
    templates = []
    for i in range(60):
        schema = _schemas(rng)
        templates.append({"name": f"r{i}", "params_schema": schema})
        # params are always an object (enqueue refuses anything else before the schema)
        cases += [
            (f"r{i}", {k: _value(rng, 1) for k in rng.sample("abcd", rng.randint(0, 4))})
            for _ in range(25)
        ]
    with psycopg.connect(db_url) as conn:
        conn.execute("select public.upsert_templates(%s::jsonb)", [json.dumps(templates)])
        rows = conn.execute(
            "select c.t, c.v, tp.walk, pulser_ops.params_break_rules(c.t, c.v),"
            " pulser_ops.schema_violation(t.params_schema, c.v, 'params')"
            " from jsonb_to_recordset(%s::jsonb) as c(t text, v jsonb)"
            " join public.run_templates t on t.name = c.t"
            " join pulser_ops.template_params tp on tp.template = c.t",
            [json.dumps([{"t": t, "v": v} for t, v in cases])],
        ).fetchall()
        conn.rollback()
    compiled = [r for r in rows if not r[2]]
    assert len(compiled) > 1000, "most random schemas compile to rules"
    disagree = [r for r in compiled if r[3] != (r[4] is not None)]
    assert disagree == []
    assert 0.2 < sum(r[3] for r in compiled) / len(compiled) < 0.9  # both answers, often
