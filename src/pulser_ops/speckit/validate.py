"""Check spec kits against Spec Kit's format and report every finding.

``validate(opened)`` finds the kits in a tree (see :mod:`.layout`), reads their documents and
runs the rules of :mod:`.rules`. It never raises for a bad *document* (that is a finding); it
raises only for a bad *source* (nothing to validate), from :mod:`.source`.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from .. import __version__
from ..errors import NotFound
from . import upstream
from .layout import Kit, discover, select_changed
from .markdown import (
    Heading,
    Line,
    bracketed,
    find_heading,
    headings,
    is_list_item,
    list_items,
    plain,
    scan,
    section,
    todo_markers,
)
from .report import Counts, Finding, KitReport, Report, Source, Summary
from .rules import severity
from .source import Opened, Tree
from .upstream import DOC_KINDS, REQUIRED_SECTIONS, DocKind

_ALL_CAPS = re.compile(r"\[[A-Z][A-Z0-9_]*(?:[ _#-]+[A-Z0-9_]+)*\]")
_TEMPLATE_VARS = re.compile(r"\$ARGUMENTS\b|__SPECKIT_[A-Z_]+__")
_TODO = re.compile(r"\bTODO\(([A-Za-z0-9_.-]+)\)|\bTODO:|\bTKTK\b")  # what counts as open
_CLARIFY = re.compile(r"\bNEEDS CLARIFICATION\b")
_STORY = re.compile(r"^User Story\s+(\d+)\b\s*[-\u2013\u2014:]?\s*(.*)$", re.IGNORECASE)
_PRIORITY = re.compile(r"\(\s*Priority\s*:\s*P(\d+)\s*\)", re.IGNORECASE)
_GWT = re.compile(r"\bGiven\b.*\bWhen\b.*\bThen\b", re.IGNORECASE)
_SCENARIO_LABEL = re.compile(r"acceptance\s+(scenarios|criteria)", re.IGNORECASE)
_FR_ANY = re.compile(r"\bFR-(\d+)\b")
_FR_ITEM = re.compile(r"^\s*(?:[-*+]|\d+[.)])\s+(?:\*\*)?\s*(FR-\w+)")
_SC_ITEM = re.compile(r"^\s*(?:[-*+]|\d+[.)])\s+(?:\*\*)?\s*(SC-\w+)")
_ID3 = re.compile(r"^(FR|SC)-\d{3}$")
_NUMBER = re.compile(r"\d|%|\b(?:zero|all|every|each|none|never|always|no more than|at least)\b")
_CHECKBOX = re.compile(r"^\s*[-*+]\s+\[[ xX]\]")
_TASK_ID_START = re.compile(r"^\s*(?:[-*+]\s+)?(?:\[[ xX]\]\s+)?T(\d+|X+)\b")
_TASK = re.compile(r"^- \[[ xX]\] (T\d{3,})(?: \[P\])?(?: \[US(\d+)\])? (\S.*)$")


@dataclass
class Doc:
    kind: DocKind
    path: str
    shown: str
    lines: list[Line]
    heads: list[Heading]


@dataclass
class KitCheck:
    """The findings and counts of one kit while it is being checked."""

    kit: Kit
    display: str
    findings: list[Finding] = field(default_factory=list)
    counts: Counts = field(default_factory=Counts)

    def add(self, rule: str, file: str | None, line: int | None, message: str) -> None:
        self.findings.append(
            Finding(
                rule=rule,
                severity=severity(rule),
                file=file,
                line=line,
                message=message,
                kit=_shown(self.display, self.kit.root) or self.kit.name,
            )
        )


def _shown(display: str, path: str) -> str:
    if display and path:
        return posixpath.join(display, path)
    return display or path


def _snippet(text: str, limit: int = 80) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


# --- documents -----------------------------------------------------------------------------


def _load(tree: Tree, kit: Kit, check: KitCheck) -> dict[DocKind, Doc]:
    docs: dict[DocKind, Doc] = {}
    for kind in DOC_KINDS:
        path = kit.files[kind]
        shown = _shown(check.display, path)
        body = tree.read(path)
        if body is None:
            check.add("file.missing", shown, None, f"{shown} is missing ({_role(kind, kit)})")
            continue
        try:
            if b"\0" in body:
                raise UnicodeDecodeError("utf-8", body, 0, 1, "NUL byte")
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            check.add("file.not-text", shown, None, f"{shown} is not UTF-8 text")
            continue
        lines = scan(text.removeprefix("\ufeff"))
        docs[kind] = Doc(kind, path, shown, lines, headings(lines))
    return docs


def _role(kind: DocKind, kit: Kit) -> str:
    if kind == "spec":
        return "the feature specification, Spec Kit's spec.md" + (
            " (called prd.md in this layout)" if kit.layout == "plan" else ""
        )
    return {
        "constitution": "the project constitution",
        "plan": "the implementation plan",
        "tasks": "the task list",
    }[kind]


# --- rules for every document ----------------------------------------------------------------


def _sections(doc: Doc, check: KitCheck) -> None:
    have = {h.key for h in doc.heads}
    for key in REQUIRED_SECTIONS[doc.kind]:
        if key not in have and not any(k.startswith(key + " ") for k in have):
            title = _template_title(doc.kind, key)
            check.add(
                "section.missing", doc.shown, None,
                f"section '{title}' is missing (required by Spec Kit's {doc.kind} template)",
            )  # fmt: skip


def _template_title(kind: DocKind, key: str) -> str:
    for h in headings(scan(upstream.template(kind))):
        if h.key == key:
            return re.sub(r"\s*\*\(.*?\)\*", "", h.title)
    return key


def _placeholders(doc: Doc, check: KitCheck) -> None:
    known = upstream.placeholders()
    for b in bracketed(doc.lines, prose_only=False):
        if b.is_link or upstream.is_format_token(b.text):
            continue
        # A template's own slot anywhere; any other [ALL_CAPS] only in prose (in code it is code).
        slot = b.text in known or (
            _ALL_CAPS.fullmatch(b.text) is not None and _in_prose(doc, b.line, b.text)
        )
        if slot:
            check.add(
                "placeholder.unresolved", doc.shown, b.line,
                f"unresolved template placeholder {_snippet(b.text)}",
            )  # fmt: skip
    for ln in doc.lines:
        for m in _TEMPLATE_VARS.finditer(ln.prose):
            check.add(
                "placeholder.unresolved", doc.shown, ln.number,
                f"unresolved template variable {m.group(0)}",
            )  # fmt: skip


def _in_prose(doc: Doc, line: int, text: str) -> bool:
    return text in doc.lines[line - 1].prose


def _markers(doc: Doc, check: KitCheck) -> None:
    for ln in doc.lines:
        marked = {col: (fld, text) for col, fld, text in todo_markers(ln.visible)}
        for m in _TODO.finditer(ln.prose):
            if m.start() in marked:
                fld, text = marked[m.start()]
                message = f"TODO({fld}) left open" + (f": {_snippet(text, 100)}" if text else "")
            else:
                message = f"open marker: {_snippet(ln.prose[m.start() :], 100)}"
            check.add("marker.todo", doc.shown, ln.number, message)
        for m in _CLARIFY.finditer(ln.prose):
            rest = _snippet(ln.prose[m.start() :].rstrip("]"), 100)
            check.add("marker.needs-clarification", doc.shown, ln.number, f"open question: {rest}")


# --- constitution ------------------------------------------------------------------------------


def _principles(doc: Doc, check: KitCheck) -> None:
    core = find_heading(doc.heads, "core principles")
    if core is None:
        return  # section.missing already says so
    body = section(doc.lines, core)
    if not any(h.level > core.level for h in headings(body)):
        check.add(
            "principle.missing", doc.shown, core.line,
            "Core Principles names no principle (one ### heading per principle)",
        )  # fmt: skip


# --- spec ------------------------------------------------------------------------------------


@dataclass
class SpecFacts:
    stories: dict[int, int] = field(default_factory=dict)  # number -> line
    requirements: dict[str, int] = field(default_factory=dict)  # FR id -> line


def _stories(doc: Doc, check: KitCheck, facts: SpecFacts) -> None:
    found = [(h, _STORY.match(plain(h.title))) for h in doc.heads]
    stories = [(h, m) for h, m in found if m]
    if not stories:
        check.add(
            "story.missing", doc.shown, None,
            "no user story: add '### User Story 1 - <title> (Priority: P1)' "
            "with acceptance scenarios",
        )  # fmt: skip
        return
    for h, m in stories:
        number = int(m.group(1))
        if number in facts.stories:
            check.add(
                "story.duplicate", doc.shown, h.line,
                f"User Story {number} is defined twice (also line {facts.stories[number]})",
            )  # fmt: skip
            continue
        facts.stories[number] = h.line
        if not _PRIORITY.search(h.title):
            check.add(
                "story.priority", doc.shown, h.line,
                f"User Story {number} has no priority: end its heading with '(Priority: P1)'",
            )  # fmt: skip
        _scenarios(doc, check, h, number)
    check.counts.user_stories = len(facts.stories)


def _scenarios(doc: Doc, check: KitCheck, story: Heading, number: int) -> None:
    body = section(doc.lines, story)
    label = next((ln for ln in body if _SCENARIO_LABEL.search(plain(ln.prose))), None)
    good = 0
    if label is not None:
        after = body[body.index(label) + 1 :]
        for ln in _scenario_items(after):
            if _GWT.search(plain(ln.prose)):
                good += 1
            else:
                check.add(
                    "story.scenario-format", doc.shown, ln.number,
                    f"acceptance scenario of User Story {number} is not "
                    f"'Given ..., When ..., Then ...': {_snippet(plain(ln.prose).strip())}",
                )  # fmt: skip
    if good == 0:
        check.add(
            "story.acceptance", doc.shown, story.line,
            f"User Story {number} has no acceptance scenario "
            "('1. **Given** ..., **When** ..., **Then** ...' under **Acceptance Scenarios**)",
        )  # fmt: skip


def _scenario_items(lines: list[Line]) -> Iterable[Line]:
    """The list items right after the label, up to the first non-list paragraph."""
    started = False
    for ln in lines:
        text = ln.prose.strip()
        if not text:
            continue
        if is_list_item(ln):
            started = True
            yield ln
        elif started and ln.text.startswith((" ", "\t")):
            continue  # a wrapped item
        else:
            return


def _ids_in(
    doc: Doc, check: KitCheck, heading_key: str, item: re.Pattern[str], kind: str
) -> dict[str, int]:
    """Ids of the list items under a section (``FR-001``...), with format and duplicates."""
    head = find_heading(doc.heads, heading_key)
    if head is None:
        return {}
    ids: dict[str, int] = {}
    for ln in list_items(section(doc.lines, head)):
        m = item.match(ln.prose)
        if not m:
            continue
        ident = m.group(1).rstrip("*:")
        if not _ID3.match(ident):
            check.add(
                "id.format", doc.shown, ln.number,
                f"{ident} is not a well-formed id (three digits: {ident.split('-')[0]}-001)",
            )  # fmt: skip
            continue
        if ident in ids:
            check.add(
                f"{kind}.duplicate", doc.shown, ln.number,
                f"{ident} is defined twice (also line {ids[ident]})",
            )  # fmt: skip
            continue
        ids[ident] = ln.number
        if kind == "success":
            rest = plain(ln.prose[m.end() :])
            if not _NUMBER.search(rest) and not _TODO.search(rest):
                check.add(
                    "success.measurable", doc.shown, ln.number,
                    f"{ident} states no number, percentage or time to measure: "
                    f"{_snippet(rest.strip(' :'))}",
                )  # fmt: skip
    return ids


def _requirements(doc: Doc, check: KitCheck, facts: SpecFacts) -> None:
    facts.requirements = _ids_in(doc, check, "functional requirements", _FR_ITEM, "requirement")
    check.counts.requirements = len(facts.requirements)
    if not facts.requirements and find_heading(doc.heads, "functional requirements"):
        head = find_heading(doc.heads, "functional requirements")
        check.add(
            "requirement.missing", doc.shown, head.line if head else None,
            "no functional requirement: list them as '- **FR-001**: System MUST ...'",
        )  # fmt: skip
    criteria_head = find_heading(doc.heads, "success criteria")
    criteria = _ids_in(doc, check, "success criteria", _SC_ITEM, "success")
    check.counts.success_criteria = len(criteria)
    if not criteria and criteria_head is not None:
        check.add(
            "success.missing", doc.shown, criteria_head.line,
            "no success criterion: list measurable outcomes as '- **SC-001**: ...'",
        )  # fmt: skip


# --- tasks -----------------------------------------------------------------------------------


def _tasks(doc: Doc, check: KitCheck, facts: SpecFacts | None) -> None:
    ids: dict[str, int] = {}
    named: set[str] = set()
    for ln in doc.lines:
        if ln.in_code:
            continue
        looks = _CHECKBOX.match(ln.prose) or _TASK_ID_START.match(ln.prose)
        if not looks:
            continue
        m = _TASK.match(ln.text.strip())
        if not m:
            check.add(
                "task.format", doc.shown, ln.number,
                f"not a well-formed task (- [ ] T001 [P] [US1] description): "
                f"{_snippet(ln.text.strip())}",
            )  # fmt: skip
            continue
        tid, story, description = m.group(1), m.group(2), m.group(3)
        if tid in ids:
            check.add(
                "task.duplicate", doc.shown, ln.number,
                f"task {tid} is defined twice (also line {ids[tid]})",
            )  # fmt: skip
            continue
        ids[tid] = ln.number
        if facts is None:
            continue
        if story is not None and int(story) not in facts.stories:
            check.add(
                "task.unknown-story", doc.shown, ln.number,
                f"task {tid} belongs to US{story}, but the spec has no User Story {story}",
            )  # fmt: skip
        for fr in _FR_ANY.finditer(description):
            ident = fr.group(0)
            named.add(ident)
            if ident not in facts.requirements and _ID3.match(ident):
                check.add(
                    "task.unknown-requirement", doc.shown, ln.number,
                    f"task {tid} names {ident}, which the spec does not define",
                )  # fmt: skip
    check.counts.tasks = len(ids)
    if not ids:
        check.add(
            "task.missing", doc.shown, None,
            "no task: list them as '- [ ] T001 [P] [US1] description with file path'",
        )  # fmt: skip
        return
    if facts is None:
        return
    covered = 0
    for ident, line in facts.requirements.items():
        if ident in named:
            covered += 1
        else:
            spec = check.kit.files["spec"]
            check.add(
                "coverage.requirement", _shown(check.display, spec), line,
                f"{ident} is covered by no task: name it in a task, e.g. "
                f"'- [ ] T0xx [US1] ... ({ident})'",
            )  # fmt: skip
    check.counts.covered_requirements = covered


# --- a kit, a tree -----------------------------------------------------------------------------


def check_kit(tree: Tree, kit: Kit) -> tuple[KitReport, list[Finding]]:
    check = KitCheck(kit, tree.display)
    docs = _load(tree, kit, check)
    facts: SpecFacts | None = None
    for kind in DOC_KINDS:
        doc = docs.get(kind)
        if doc is None:
            continue
        _sections(doc, check)
        _placeholders(doc, check)
        _markers(doc, check)
        if kind == "constitution":
            _principles(doc, check)
        elif kind == "spec":
            facts = SpecFacts()
            _stories(doc, check, facts)
            _requirements(doc, check, facts)
        elif kind == "tasks":
            _tasks(doc, check, facts)
    errors = sum(f.severity == "error" for f in check.findings)
    report = KitReport(
        root=_shown(tree.display, kit.root),
        name=kit.name,
        layout=kit.layout,
        files={k: _shown(tree.display, p) for k, p in kit.files.items()},
        errors=errors,
        warnings=len(check.findings) - errors,
        counts=check.counts,
    )
    return report, check.findings


def validate(
    opened: Opened,
    source: Source,
    *,
    changed: Iterable[str] | None = None,
    include: Iterable[str] = (),
) -> Report:
    """Validate every kit in ``opened``; with ``changed``, only the kits those paths touch
    plus the kits whose roots ``include`` names (validated whether they changed or not)."""
    tree = opened.tree
    files = tree.files()
    kits = discover(files, posixpath.basename(tree.display.rstrip("/")))
    if opened.only is not None:
        kits = [k for k in kits if k.root == opened.only]
    if changed is not None:
        wanted = set(include)
        missing = wanted - {k.root for k in kits}
        if missing:
            raise NotFound(f"no spec kit at {', '.join(sorted(missing))}")
        chosen = select_changed(kits, changed)
        kits = [k for k in kits if k in chosen or k.root in wanted]
    elif not kits:
        where = tree.display or "the source"
        raise NotFound(
            f"no spec kit in {where}: expected spec/<project>/{{constitution,prd,plan,tasks}}.md "
            "or .specify/memory/constitution.md + specs/<NNN-feature>/{spec,plan,tasks}.md"
        )
    checked = [check_kit(tree, k) for k in kits]
    kit_reports = [kr for kr, _ in checked]
    findings = [f for _, found in checked for f in found]
    errors = sum(f.severity == "error" for f in findings)
    return Report(
        tool={"name": "pulser-ops", "version": __version__},
        spec_kit={"package": "specify-cli", "version": upstream.version()},
        source=source,
        kits=kit_reports,
        findings=findings,
        summary=Summary(
            ok=errors == 0, errors=errors, warnings=len(findings) - errors, kits=len(kits)
        ),
    )
