"""The validation rules: one stable id each, its severity and what it checks.

Ids never change meaning once released (reports, CI annotations and people's suppressions
refer to them); a rule that is dropped keeps its id retired. docs/SPEC_KIT.md shows an example
finding for each, and a test keeps that list and this one in step.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Severity = Literal["error", "warning"]


@dataclass(frozen=True)
class Rule:
    id: str
    severity: Severity
    summary: str


_RULES = (
    Rule("file.missing", "error", "A document the layout requires is missing."),
    Rule("file.not-text", "error", "A document is not UTF-8 text (binary, or has NUL bytes)."),
    Rule("section.missing", "error", "A section the Spec Kit template requires is missing."),
    Rule(
        "placeholder.unresolved", "error", "A template placeholder such as [PROJECT_NAME] is left."
    ),
    Rule("marker.todo", "warning", "A TODO(FIELD) marker is left for a person to fill in."),
    Rule("marker.needs-clarification", "warning", "A [NEEDS CLARIFICATION: ...] marker is left."),
    Rule("principle.missing", "error", "The constitution's Core Principles has no principle."),
    Rule("story.missing", "error", "The spec has no user story."),
    Rule("story.priority", "error", "A user story has no (Priority: P#)."),
    Rule("story.duplicate", "error", "Two user stories have the same number."),
    Rule("story.acceptance", "error", "A user story has no Given/When/Then acceptance scenario."),
    Rule("story.scenario-format", "warning", "An acceptance scenario is not Given/When/Then."),
    Rule("requirement.missing", "error", "The spec has no functional requirement FR-###."),
    Rule("id.format", "error", "A requirement or criterion id is not FR-### / SC-###."),
    Rule("requirement.duplicate", "error", "Two functional requirements have the same id."),
    Rule("success.missing", "error", "The spec has no success criterion SC-###."),
    Rule("success.duplicate", "error", "Two success criteria have the same id."),
    Rule("success.measurable", "warning", "A success criterion has no number to measure."),
    Rule("task.missing", "error", "tasks.md has no task."),
    Rule("task.format", "error", "A task is not `- [ ] T### [P]? [US#]? description`."),
    Rule("task.duplicate", "error", "Two tasks have the same id."),
    Rule("task.unknown-story", "error", "A task names a user story the spec does not have."),
    Rule("task.unknown-requirement", "warning", "A task names a requirement the spec lacks."),
    Rule("coverage.requirement", "error", "A functional requirement is named by no task."),
)

RULES: dict[str, Rule] = {r.id: r for r in _RULES}


def severity(rule_id: str) -> Severity:
    return RULES[rule_id].severity
