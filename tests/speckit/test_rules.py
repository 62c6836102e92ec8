"""Generate, validate (zero errors), then damage the kit in each way a rule covers: each
damage gives exactly the findings expected, nothing more."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest

from pulser_ops.speckit.rules import RULES
from tests.speckit.kits import check, edit, kit, new_findings, tree_of

SPEC = "spec/acme-notes/prd.md"
TASKS = "spec/acme-notes/tasks.md"
PLAN = "spec/acme-notes/plan.md"
CONST = "spec/acme-notes/constitution.md"


def line_of(text: str, pattern: str, nth: int = 0) -> int:
    hits = [i + 1 for i, ln in enumerate(text.split("\n")) if re.search(pattern, ln)]
    return hits[nth]


def drop(pattern: str) -> Callable[[list[str]], list[str]]:
    return lambda lines: [ln for ln in lines if not re.search(pattern, ln)]


def after(pattern: str, *new: str) -> Callable[[list[str]], list[str]]:
    def change(lines: list[str]) -> list[str]:
        i = next(i for i, ln in enumerate(lines) if re.search(pattern, ln))
        return lines[: i + 1] + list(new) + lines[i + 1 :]

    return change


def before(pattern: str, *new: str) -> Callable[[list[str]], list[str]]:
    def change(lines: list[str]) -> list[str]:
        i = next(i for i, ln in enumerate(lines) if re.search(pattern, ln))
        return lines[:i] + list(new) + lines[i:]

    return change


def sub(pattern: str, repl: str, count: int = 1) -> Callable[[list[str]], list[str]]:
    return lambda lines: re.sub(pattern, repl, "\n".join(lines), count=count).split("\n")


def test_generated_kit_has_no_errors_and_one_warning_per_listed_todo() -> None:
    for layout in ("plan", "speckit"):
        g = kit(layout)
        report = check(tree_of(g))
        assert report.summary.errors == 0, report.findings
        assert report.ok
        todos = sorted((t.file, t.line) for t in g.todos)
        warned = sorted((f.file, f.line) for f in report.findings if f.rule == "marker.todo")
        assert todos == warned
        assert {f.rule for f in report.findings} == {"marker.todo"}
        assert report.kits[0].counts.model_dump() == {
            "user_stories": 2,
            "requirements": 3,
            "covered_requirements": 3,
            "success_criteria": 2,
            "tasks": 12,
        }


def test_generation_is_deterministic() -> None:
    a, b = kit(), kit()
    assert a == b
    assert a.zip_bytes() == b.zip_bytes()
    assert kit(description="something else").zip_bytes() != a.zip_bytes()


# (rule id, file to damage, change, expected new findings as (rule, file, line-pattern|None))
CASES: list[
    tuple[str, str, Callable[[list[str]], list[str]], list[tuple[str, str, str | None]]]
] = [
    ("section.missing", SPEC, drop(r"^## Assumptions"), [("section.missing", SPEC, None)]),
    (
        "placeholder.unresolved",
        SPEC,
        sub(r"\*\*Created\*\*: 2026-11-30", "**Created**: [DATE]"),
        [("placeholder.unresolved", SPEC, r"\*\*Created\*\*")],
    ),
    (
        "marker.todo",
        PLAN,
        after(r"^## Summary", "", "TODO(OWNER): who signs this plan off"),
        [("marker.todo", PLAN, r"TODO\(OWNER\)")],
    ),
    (
        "marker.needs-clarification",
        SPEC,
        after(r"^## Assumptions", "", "- Notes are kept for [NEEDS CLARIFICATION: how long?]"),
        [("marker.needs-clarification", SPEC, r"NEEDS CLARIFICATION")],
    ),
    (
        "principle.missing",
        CONST,
        drop(r"^### "),
        [("principle.missing", CONST, r"^## Core Principles")],
    ),
    (
        "story.priority",
        SPEC,
        sub(r" \(Priority: P2\)", ""),
        [("story.priority", SPEC, r"^### User Story 2")],
    ),
    (
        "story.duplicate",
        SPEC,
        before(
            r"^### Edge Cases",
            "### User Story 1 - Again (Priority: P3)",
            "",
            "**Acceptance Scenarios**:",
            "",
            "1. **Given** a, **When** b, **Then** c",
            "",
        ),
        [("story.duplicate", SPEC, r"User Story 1 - Again")],
    ),
    (
        "story.acceptance",
        SPEC,
        drop(r"^\d\. \*\*Given\*\* a note, \*\*When\*\* I share"),
        [("story.acceptance", SPEC, r"^### User Story 2")],
    ),
    (
        "story.scenario-format",
        SPEC,
        sub(r"1\. \*\*Given\*\* an empty notebook.*", "1. I save a note and it is listed"),
        [("story.scenario-format", SPEC, r"^1\. I save a note")],
    ),
    (
        "id.format",
        SPEC,
        after(r"\*\*SC-002\*\*", "- **SC-7**: 99% of notes load in 1 second"),
        [("id.format", SPEC, r"SC-7")],
    ),
    (
        "requirement.duplicate",
        SPEC,
        after(r"\*\*FR-003\*\*", "- **FR-001**: System MUST also log notes"),
        [("requirement.duplicate", SPEC, r"also log notes")],
    ),
    (
        "success.duplicate",
        SPEC,
        after(r"\*\*SC-002\*\*", "- **SC-001**: 95% of notes load in 1 second"),
        [("success.duplicate", SPEC, r"95% of notes")],
    ),
    (
        "success.measurable",
        SPEC,
        after(r"\*\*SC-002\*\*", "- **SC-003**: Users like sharing"),
        [("success.measurable", SPEC, r"SC-003")],
    ),
    (
        "success.missing",
        SPEC,
        drop(r"\*\*SC-00\d\*\*"),
        [("success.missing", SPEC, r"^## Success Criteria")],
    ),
    (
        "task.format",
        TASKS,
        after(r"T003", "- [ ] Write the docs"),
        [("task.format", TASKS, r"Write the docs")],
    ),
    (
        "task.duplicate",
        TASKS,
        after(r"T003", "- [ ] T002 Initialize again"),
        [("task.duplicate", TASKS, r"Initialize again")],
    ),
    (
        "task.unknown-story",
        TASKS,
        after(r"T003", "- [ ] T099 [US9] Build story nine"),
        [("task.unknown-story", TASKS, r"T099")],
    ),
    (
        "task.unknown-requirement",
        TASKS,
        after(r"T003", "- [ ] T098 Implement FR-042"),
        [("task.unknown-requirement", TASKS, r"T098")],
    ),
    ("task.missing", TASKS, drop(r"^- \[ \] T\d+"), [("task.missing", TASKS, None)]),
    (
        "coverage.requirement",
        SPEC,
        after(r"\*\*FR-003\*\*", "- **FR-004**: System MUST export notes"),
        [("coverage.requirement", SPEC, r"FR-004")],
    ),
]


@pytest.mark.parametrize(("rule", "path", "change", "expected"), CASES, ids=[c[0] for c in CASES])
def test_each_damage_gives_exactly_its_finding(
    rule: str,
    path: str,
    change: Callable[[list[str]], list[str]],
    expected: list[tuple[str, str, str | None]],
) -> None:
    files = tree_of(kit())
    before = check(files)
    damaged = edit(files[path].decode(), change)
    assert damaged != files[path].decode(), "the damage changed nothing"
    files[path] = damaged.encode()
    after_report = check(files)
    want = sorted((r, f, None if p is None else line_of(damaged, p)) for r, f, p in expected)
    assert new_findings(before, after_report) == want
    assert all(r in RULES for r, _, _ in want)
    assert after_report.ok == (RULES[rule].severity == "warning")


def test_story_missing_and_the_tasks_that_named_stories() -> None:
    files = tree_of(kit())
    before = check(files)
    files[SPEC] = edit(
        files[SPEC].decode(), sub(r"### User Story (\d)", r"### Journey \1", 0)
    ).encode()
    found = new_findings(before, check(files))
    assert [f for f in found if f[0] != "task.unknown-story"] == [("story.missing", SPEC, None)]
    tasks = files[TASKS].decode()
    assert len([f for f in found if f[0] == "task.unknown-story"]) == len(
        re.findall(r"\[US\d\]", tasks)
    )


def test_requirement_missing() -> None:
    files = tree_of(kit())
    before = check(files)
    files[SPEC] = edit(files[SPEC].decode(), drop(r"\*\*FR-00\d\*\*")).encode()
    found = new_findings(before, check(files))
    spec = files[SPEC].decode()
    assert ("requirement.missing", SPEC, line_of(spec, r"^### Functional Requirements")) in found
    # the tasks still name FR-001..3: each is now a requirement the spec lacks
    assert {f[0] for f in found} == {"requirement.missing", "task.unknown-requirement"}


def test_missing_file_and_binary_file() -> None:
    files = tree_of(kit())
    before = check(files)
    del files[TASKS]
    files[PLAN] = b"\x89PNG\r\n\x1a\n\x00\x00binary"
    found = new_findings(before, check(files))
    assert ("file.missing", TASKS, None) in found
    assert ("file.not-text", PLAN, None) in found
    # the plan's and the tasks' own TODO warnings are gone with them; nothing else is new
    assert {f[0] for f in found} == {"file.missing", "file.not-text"}


def test_every_rule_has_a_damage_case() -> None:
    covered = {c[0] for c in CASES} | {
        "story.missing",
        "requirement.missing",
        "file.missing",
        "file.not-text",
    }
    assert covered == set(RULES)


def test_docs_show_every_rule() -> None:
    from pathlib import Path

    docs = (Path(__file__).resolve().parents[2] / "docs" / "SPEC_KIT.md").read_text()
    for rule in RULES.values():
        assert f"| `{rule.id}` | {rule.severity} |" in docs, rule.id


@pytest.mark.parametrize("layout", ["plan", "speckit"])
def test_name_and_description_alone_give_a_valid_kit_with_listed_todos(layout: str) -> None:
    from pulser_ops.speckit.generate import generate
    from pulser_ops.speckit.model import parse_params

    g = generate(
        parse_params({"name": "bare", "description": "Only a description.", "layout": layout})
    )
    report = check(tree_of(g))
    assert report.summary.errors == 0, report.findings
    fields = {t.field for t in g.todos}
    # the template's five principle slots, the story's parts, the plan's context: all listed
    assert {f"PRINCIPLE_{i}_NAME" for i in range(1, 6)} <= fields
    assert {"US1_WHY", "US1_GIVEN", "SC_001", "LANGUAGE_VERSION", "DATE"} <= fields
    assert "US1_DESCRIPTION" not in fields  # the one story is the description itself
    assert "[" + "PROJECT_NAME]" not in "".join(d.content for d in g.documents)
    assert report.kits[0].counts.user_stories == 1
