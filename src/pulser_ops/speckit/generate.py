"""Fill Spec Kit's templates from a project's name, description, stories and principles.

The output follows the pinned upstream templates section by section (same headings, same
field labels, same id formats), with the template's guidance comments and sample content
replaced. What the inputs can fill is filled; every slot they cannot fill becomes an explicit
``TODO(FIELD): what to write`` marker (Spec Kit's own convention for deferred values, see
its constitution command), listed in :attr:`GeneratedKit.todos`. Nothing is left as a bare
``[PLACEHOLDER]``, so a generated kit validates with zero errors and one warning per TODO.

Pure and deterministic: the same params give the same bytes (no clock, no randomness, no
network, no model). Teams that want prose drafted by a model put an ``http`` or ``mcp`` step
before this one and pass its output as the ``draft`` (docs/SPEC_KIT.md).
"""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass

from ..errors import InvalidInput
from .layout import Kit, feature_dir, new_kit
from .markdown import todo_markers
from .model import KitParams, Story
from .source import MAX_FILE_BYTES
from .upstream import DocKind

ZIP_NAME = "spec-kit.zip"
_ROMAN = ("I", "II", "III", "IV", "V", "VI", "VII", "VIII", "IX", "X", "XI", "XII", "XIII",
          "XIV", "XV", "XVI", "XVII", "XVIII", "XIX", "XX")  # fmt: skip


@dataclass(frozen=True)
class Document:
    kind: DocKind
    path: str
    title: str
    content: str


@dataclass(frozen=True)
class Todo:
    file: str
    line: int
    field: str
    text: str


@dataclass(frozen=True)
class GeneratedKit:
    kit: Kit
    documents: tuple[Document, ...]
    todos: tuple[Todo, ...]

    def zip_bytes(self) -> bytes:
        """The documents as ``spec-kit.zip``: sorted, fixed timestamps and modes, so the
        same kit always gives the same archive."""
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
            for doc in sorted(self.documents, key=lambda d: d.path):
                info = zipfile.ZipInfo(doc.path, date_time=(1980, 1, 1, 0, 0, 0))
                info.external_attr = 0o100644 << 16
                info.compress_type = zipfile.ZIP_DEFLATED
                zf.writestr(info, doc.content.encode("utf-8"))
        return buf.getvalue()


def one_line(text: str) -> str:
    return " ".join(text.split())


def todo(field: str, what: str) -> str:
    return f"TODO({field}): {what}"


@dataclass(frozen=True)
class _Req:
    ident: str
    text: str
    story: int


class _Kit:
    """Everything the four documents share, worked out once."""

    def __init__(self, p: KitParams) -> None:
        self.p = p
        self.kit = new_kit(p.layout, p.name)
        self.title = one_line(p.display_title)
        self.branch = feature_dir(p.name)
        self.date = p.date.isoformat() if p.date else None
        self.stories: list[Story] = list(p.features) or [
            Story(title=self.title, description=p.description)
        ]
        self.reqs: list[_Req] = []
        self.criteria: list[tuple[str, str]] = []
        for n, s in enumerate(self.stories, 1):
            for text in s.requirements or [
                f"System MUST deliver User Story {n}: {one_line(s.title)}"
            ]:
                self.reqs.append(_Req(f"FR-{len(self.reqs) + 1:03d}", one_line(text), n))
            for text in s.success_criteria:
                self.criteria.append((f"SC-{len(self.criteria) + 1:03d}", one_line(text)))
            if not s.success_criteria:
                ident = f"SC-{len(self.criteria) + 1:03d}"
                self.criteria.append(
                    (ident, todo(ident.replace("-", "_"), f"a measurable outcome of User Story {n} "
                                 "(a number, a percentage or a time)"))
                )  # fmt: skip

    def priority(self, n: int) -> int:
        return self.stories[n - 1].priority or n

    @property
    def spec_file(self) -> str:
        return self.kit.files["spec"].rsplit("/", 1)[-1]

    def dated(self, field: str) -> str:
        return self.date or todo(field, "the date (YYYY-MM-DD)")


# --- constitution ----------------------------------------------------------------------------


def _constitution(k: _Kit) -> str:
    out = [f"# {k.title} Constitution", "", "## Core Principles", ""]
    principles = list(k.p.principles)
    if principles:
        for i, pr in enumerate(principles):
            out += [f"### {_ROMAN[i]}. {one_line(pr.name)}", ""]
            out += [pr.description.strip() or todo(
                f"PRINCIPLE_{i + 1}_DESCRIPTION",
                "the rule, who it binds and why (MUST/SHOULD statements)",
            ), ""]  # fmt: skip
    else:
        for i in range(5):  # the template's five slots
            out += [
                f"### {_ROMAN[i]}. " + todo(f"PRINCIPLE_{i + 1}_NAME", "name this principle"),
                "",
            ]
            what = "the rule, who it binds and why (MUST/SHOULD statements)"
            out += [todo(f"PRINCIPLE_{i + 1}_DESCRIPTION", what), ""]
    for n, examples in ((2, "Additional Constraints, Security Requirements"),
                        (3, "Development Workflow, Quality Gates")):  # fmt: skip
        out += [f"## {todo(f'SECTION_{n}_NAME', f'name this section (e.g. {examples})')}", ""]
        out += [todo(f"SECTION_{n}_CONTENT", "what this section requires"), ""]
    out += [
        "## Governance",
        "",
        todo(
            "GOVERNANCE_RULES",
            "how this constitution is amended and approved, and how reviews check compliance",
        ),
        "",
        f"**Version**: 1.0.0 | **Ratified**: {k.dated('RATIFICATION_DATE')} | "
        f"**Last Amended**: {k.dated('LAST_AMENDED_DATE')}",
        "",
    ]
    return "\n".join(out)


# --- spec ------------------------------------------------------------------------------------


def _story(k: _Kit, n: int, s: Story) -> list[str]:
    out = [f"### User Story {n} - {one_line(s.title)} (Priority: P{k.priority(n)})", ""]
    out += [
        s.description.strip() or todo(f"US{n}_DESCRIPTION", "this user journey in plain language"),
        "",
    ]
    out += ["**Why this priority**: " + (one_line(s.why) or todo(
        f"US{n}_WHY", "the value of this story and why it has this priority")), ""]  # fmt: skip
    out += ["**Independent Test**: " + (one_line(s.independent_test) or todo(
        f"US{n}_TEST", "how this story can be tested on its own")), ""]  # fmt: skip
    out += ["**Acceptance Scenarios**:", ""]
    if s.acceptance:
        for i, sc in enumerate(s.acceptance, 1):
            out.append(
                f"{i}. **Given** {one_line(sc.given)}, **When** {one_line(sc.when)}, "
                f"**Then** {one_line(sc.then)}"
            )
    else:
        out.append(
            f"1. **Given** {todo(f'US{n}_GIVEN', 'the starting state')}, "
            f"**When** {todo(f'US{n}_WHEN', 'the action')}, "
            f"**Then** {todo(f'US{n}_THEN', 'the expected outcome')}"
        )
    return [*out, "", "---", ""]


def _spec(k: _Kit) -> str:
    out = [
        f"# Feature Specification: {k.title}",
        "",
        f"**Feature Branch**: `{k.branch}`",
        "",
        f"**Created**: {k.dated('DATE')}",
        "",
        "**Status**: Draft",
        "",
        f'**Input**: User description: "{one_line(k.p.description)}"',
        "",
        "## User Scenarios & Testing *(mandatory)*",
        "",
    ]
    for n, s in enumerate(k.stories, 1):
        out += _story(k, n, s)
    out += [
        "### Edge Cases",
        "",
        "- "
        + todo(
            "EDGE_CASES",
            "what happens at the boundaries (empty input, limits, "
            "concurrent changes) and on errors?",
        ),
        "",
        "## Requirements *(mandatory)*",
        "",
        "### Functional Requirements",
        "",
        *[f"- **{r.ident}**: {r.text}" for r in k.reqs],
        "",
        "### Key Entities *(include if feature involves data)*",
        "",
        "- "
        + todo(
            "KEY_ENTITIES",
            "the data this feature involves and how it relates, or remove this section",
        ),
        "",
        "## Success Criteria *(mandatory)*",
        "",
        "### Measurable Outcomes",
        "",
        *[f"- **{ident}**: {text}" for ident, text in k.criteria],
        "",
        "## Assumptions",
        "",
        "- "
        + todo(
            "ASSUMPTIONS",
            "the defaults chosen where the description is silent "
            "(users, scope, environment, dependencies)",
        ),
        "",
    ]
    return "\n".join(out)


# --- plan ------------------------------------------------------------------------------------

_TECH = (
    ("Language/Version", "language_version", "e.g. Python 3.11"),
    ("Primary Dependencies", "primary_dependencies", "e.g. FastAPI, psycopg"),
    ("Storage", "storage", "e.g. PostgreSQL, files, or N/A"),
    ("Testing", "testing", "e.g. pytest"),
    ("Target Platform", "target_platform", "e.g. Linux server"),
    ("Project Type", "project_type", "library, cli, web-service, mobile-app, ..."),
    ("Performance Goals", "performance_goals", "e.g. 1000 req/s"),
    ("Constraints", "constraints", "e.g. <200ms p95, offline-capable"),
    ("Scale/Scope", "scale_scope", "e.g. 10k users"),
)


def _plan(k: _Kit) -> str:
    spec_path = k.kit.files["spec"]
    out = [
        f"# Implementation Plan: {k.title}",
        "",
        f"**Branch**: `{k.branch}` | **Date**: {k.dated('DATE')} | "
        f"**Spec**: [{k.spec_file}](./{k.spec_file})",
        "",
        f"**Input**: Feature specification from `{spec_path}`",
        "",
        "## Summary",
        "",
        k.p.description.strip(),
        "",
        "User stories, in the order of the spec:",
        "",
        *[
            f"- User Story {n} - {one_line(s.title)} (P{k.priority(n)})"
            for n, s in enumerate(k.stories, 1)
        ],
        "",
        "## Technical Context",
        "",
    ]
    tc = k.p.technical_context
    for label, key, example in _TECH:
        value = getattr(tc, key)
        out += [f"**{label}**: " + (one_line(value) if value else todo(key.upper(), example)), ""]
    principles = [f"- {_ROMAN[i]}. {one_line(p.name)}" for i, p in enumerate(k.p.principles)]
    constitution = k.kit.files["constitution"]
    out += [
        "## Constitution Check",
        "",
        "*GATE: Must pass before Phase 0 research. Re-check after Phase 1 design.*",
        "",
        todo("CONSTITUTION_CHECK", f"how this plan satisfies each principle of `{constitution}`"),
        "",
        *(principles or [f"- the principles of `{constitution}`"]),
        "",
        "## Project Structure",
        "",
        "### Documentation (this feature)",
        "",
        "```text",
        *_tree(k),
        "```",
        "",
        "### Source Code (repository root)",
        "",
        todo("SOURCE_TREE", "the real layout of this feature's code and tests"),
        "",
        "**Structure Decision**: " + todo("STRUCTURE_DECISION", "the structure chosen and why"),
        "",
        "## Complexity Tracking",
        "",
        "> **Fill ONLY if Constitution Check has violations that must be justified**",
        "",
        "| Violation | Why Needed | Simpler Alternative Rejected Because |",
        "|-----------|------------|-------------------------------------|",
        "",
    ]
    return "\n".join(out)


def _tree(k: _Kit) -> list[str]:
    notes = {
        "constitution": "Project constitution",
        "spec": "Feature specification",
        "plan": "This file",
        "tasks": "Task list",
    }
    root = k.kit.root + "/"
    items = [(p[len(root) :], notes[kind]) for kind, p in k.kit.files.items() if p.startswith(root)]
    lines = [root]
    for i, (name, note) in enumerate(items):
        branch = "└──" if i == len(items) - 1 else "├──"
        lines.append(f"{branch} {name:<20} # {note}")
    return lines


# --- tasks -----------------------------------------------------------------------------------


def _tasks(k: _Kit) -> str:
    counter = iter(range(1, 10_000))

    def t(text: str, *, story: int | None = None, parallel: bool = False) -> str:
        marks = (" [P]" if parallel else "") + (f" [US{story}]" if story else "")
        return f"- [ ] T{next(counter):03d}{marks} {text}"

    out = [
        "---",
        "",
        f'description: "Task list for {k.title}"',
        "---",
        "",
        f"# Tasks: {k.title}",
        "",
        f"**Input**: Design documents from `{k.kit.root}/`",
        "",
        f"**Prerequisites**: plan.md (required), {k.spec_file} (required for user stories)",
        "",
        "**Tests**: Each user story has a task for tests of its acceptance scenarios.",
        "",
        "**Organization**: Tasks are grouped by user story to enable independent "
        "implementation and testing of each story.",
        "",
        "## Format: `[ID] [P?] [Story] Description`",
        "",
        "- **[P]**: Can run in parallel (different files, no dependencies)",
        "- **[Story]**: Which user story this task belongs to (e.g., US1, US2, US3)",
        "- A task names the requirements it implements by id, e.g. (FR-001)",
        "",
        "## Phase 1: Setup (Shared Infrastructure)",
        "",
        "**Purpose**: Project initialization and basic structure",
        "",
        t("Create project structure per implementation plan"),
        t("Initialize the project with the dependencies in plan.md (Technical Context)"),
        t("Configure linting and formatting tools", parallel=True),
        "",
        "---",
        "",
        "## Phase 2: Foundational (Blocking Prerequisites)",
        "",
        "**Purpose**: Core infrastructure that MUST be complete before ANY user story can be "
        "implemented",
        "",
        "**⚠️ CRITICAL**: No user story work can begin until this phase is complete",
        "",
        todo(
            "FOUNDATIONAL_TASKS",
            "the blocking prerequisites (schema, authentication, configuration) as tasks",
        ),
        "",
        "**Checkpoint**: Foundation ready - user story implementation can now begin in parallel",
        "",
        "---",
        "",
    ]
    for n, s in enumerate(k.stories, 1):
        mvp = " 🎯 MVP" if n == 1 else ""
        out += [
            f"## Phase {n + 2}: User Story {n} - {one_line(s.title)} "
            f"(Priority: P{k.priority(n)}){mvp}",
            "",
            f"**Goal**: {one_line(s.description) or one_line(s.title)}",
            "",
            f"**Independent Test**: the Independent Test of User Story {n} in {k.spec_file}",
            "",
            f"### Tests for User Story {n}",
            "",
            t(
                f"Tests for the acceptance scenarios of User Story {n} ({k.spec_file})",
                story=n,
                parallel=True,
            ),
            "",
            f"### Implementation for User Story {n}",
            "",
            *[t(f"Implement {r.text} ({r.ident})", story=n) for r in k.reqs if r.story == n],
            t(f"Check the acceptance scenarios of User Story {n} pass", story=n),
            "",
            f"**Checkpoint**: At this point, User Story {n} should be fully functional and "
            "testable independently",
            "",
            "---",
            "",
        ]
    last = len(k.stories) + 3
    out += [
        f"## Phase {last}: Polish & Cross-Cutting Concerns",
        "",
        "**Purpose**: Improvements that affect multiple user stories",
        "",
        t("Documentation updates in docs/", parallel=True),
        t(f"Validate this spec kit: `pulser-ops speckit validate {k.kit.root}`"),
        "",
        "---",
        "",
        "## Dependencies & Execution Order",
        "",
        "### Phase Dependencies",
        "",
        "- **Setup (Phase 1)**: No dependencies - can start immediately",
        "- **Foundational (Phase 2)**: Depends on Setup completion - BLOCKS all user stories",
        f"- **User Stories (Phase 3 to {last - 1})**: All depend on Foundational phase completion",
        f"- **Polish (Phase {last})**: Depends on all desired user stories being complete",
        "",
        "### User Story Dependencies",
        "",
        *[
            f"- **User Story {n} (P{k.priority(n)})**: Can start after Foundational (Phase 2)"
            for n in range(1, len(k.stories) + 1)
        ],
        "",
        "### Within Each User Story",
        "",
        "- Tests MUST be written and FAIL before implementation",
        "- Story complete before moving to next priority",
        "",
        "## Implementation Strategy",
        "",
        "### MVP First (User Story 1 Only)",
        "",
        "1. Complete Phase 1: Setup",
        "2. Complete Phase 2: Foundational (CRITICAL - blocks all stories)",
        "3. Complete Phase 3: User Story 1",
        "4. **STOP and VALIDATE**: Test User Story 1 independently",
        "",
        "### Incremental Delivery",
        "",
        "Add one user story at a time, in priority order; test each independently before the next.",
        "",
        "## Notes",
        "",
        "- [P] tasks = different files, no dependencies",
        "- [Story] label maps task to specific user story for traceability",
        "- Commit after each task or logical group",
        "",
    ]
    return "\n".join(out)


# --- the kit ---------------------------------------------------------------------------------

_TITLES: dict[DocKind, str] = {
    "constitution": "Constitution",
    "spec": "Feature Specification",
    "plan": "Implementation Plan",
    "tasks": "Tasks",
}


def generate(params: KitParams) -> GeneratedKit:
    k = _Kit(params)
    render = {"constitution": _constitution, "spec": _spec, "plan": _plan, "tasks": _tasks}
    docs = tuple(
        Document(kind, k.kit.files[kind], f"{_TITLES[kind]}: {k.title}"[:200], render[kind](k))
        for kind in ("constitution", "spec", "plan", "tasks")
    )
    for doc in docs:  # what the validator (and a spec_docs row) can take
        size = len(doc.content.encode("utf-8"))
        if size > MAX_FILE_BYTES:
            raise InvalidInput(
                f"the generated {doc.path} would be {size:,} bytes; the limit is "
                f"{MAX_FILE_BYTES:,}: shorten the description or the stories"
            )
    return GeneratedKit(k.kit, docs, tuple(_todos(docs)))


def _todos(docs: tuple[Document, ...]) -> list[Todo]:
    found: list[Todo] = []
    for doc in docs:
        for number, line in enumerate(doc.content.split("\n"), 1):
            for _, field, text in todo_markers(line):
                found.append(Todo(doc.path, number, field, text))
    return found
