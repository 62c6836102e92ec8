"""The validation report: a versioned JSON document, and its Markdown and GitHub renderings.

``report.schema.json`` (next to this module) is the contract: ``schema_version`` changes when
a field changes meaning or goes away; new optional fields may appear within a version. The
JSON carries no timestamps, so the same kit always gives the same bytes.
"""

from __future__ import annotations

import json
import re
from importlib import resources
from typing import Any, Literal

from pydantic import BaseModel, Field

from .rules import Severity

SCHEMA_VERSION = 1
#: Hidden in every Markdown rendering: the PR comment is found again by it.
COMMENT_MARKER = "<!-- pulser-ops:spec-kit-report -->"
#: GitHub refuses comments longer than this (characters).
GITHUB_COMMENT_LIMIT = 65_536


class Finding(BaseModel):
    rule: str
    severity: Severity
    file: str | None = None
    line: int | None = Field(default=None, ge=1)
    message: str
    kit: str | None = None


class Counts(BaseModel):
    user_stories: int = 0
    requirements: int = 0
    covered_requirements: int = 0
    success_criteria: int = 0
    tasks: int = 0


class KitReport(BaseModel):
    root: str
    name: str
    layout: Literal["plan", "speckit"]
    files: dict[str, str]
    errors: int = 0
    warnings: int = 0
    counts: Counts = Field(default_factory=Counts)


class Source(BaseModel):
    kind: Literal["path", "zip", "git", "artifact", "generated"]
    location: str


class Summary(BaseModel):
    ok: bool
    errors: int
    warnings: int
    kits: int


class Report(BaseModel):
    schema_version: int = SCHEMA_VERSION
    tool: dict[str, str]
    spec_kit: dict[str, str]
    source: Source
    kits: list[KitReport]
    findings: list[Finding]
    summary: Summary

    @property
    def ok(self) -> bool:
        return self.summary.ok

    def to_json(self) -> str:
        return json.dumps(self.model_dump(mode="json"), indent=2, ensure_ascii=False) + "\n"


def schema() -> dict[str, Any]:
    text = resources.files("pulser_ops.speckit").joinpath("report.schema.json").read_text("utf-8")
    data: dict[str, Any] = json.loads(text)
    return data


# --- Markdown --------------------------------------------------------------------------------

_MD_SPECIAL = re.compile(r"([\\`*_\[\]|~])")


def md_text(text: str) -> str:
    """Text from a document, made inert in Markdown/HTML: no tags, no links, no mentions,
    no table breaks. PR comments show what contributors wrote; it must not become markup."""
    text = " ".join(text.split())
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    text = _MD_SPECIAL.sub(r"\\\1", text)
    return text.replace("@", "@\u200b")  # no @mentions


def _location(f: Finding) -> str:
    if f.file is None:
        return ""
    return f"{f.file}:{f.line}" if f.line else f.file


def to_markdown(report: Report, *, limit: int | None = None) -> str:
    """The report for people (and the PR comment). ``limit`` caps the length, dropping
    findings from the end with a note, so the comment always fits."""
    s = report.summary
    icon = "❌" if s.errors else ("⚠️" if s.warnings else "✅")
    verdict = (
        f"{s.errors} error(s), {s.warnings} warning(s)"
        if (s.errors or s.warnings)
        else "no findings"
    )
    head = [
        COMMENT_MARKER,
        f"## {icon} Spec Kit validation: {verdict}",
        "",
        f"Source: {md_text(report.source.kind)} `{report.source.location.replace('`', '')}` · "
        f"Spec Kit templates {md_text(report.spec_kit.get('version', '?'))} · "
        f"{md_text(report.tool.get('name', ''))} {md_text(report.tool.get('version', ''))}",
        "",
    ]
    if not report.kits:
        head.append("No spec kit to validate.")
    else:
        head += [
            "| Kit | Layout | Errors | Warnings | Stories | Requirements (covered) | Criteria "
            "| Tasks |",
            "|---|---|---:|---:|---:|---:|---:|---:|",
        ]
        for k in report.kits:
            c = k.counts
            head.append(
                f"| {md_text(k.root or k.name)} | {k.layout} | {k.errors} | {k.warnings} | "
                f"{c.user_stories} | {c.requirements} ({c.covered_requirements}) | "
                f"{c.success_criteria} | {c.tasks} |"
            )
    rows: list[str] = []
    if report.findings:
        rows += ["", "| | Rule | Where | Finding |", "|---|---|---|---|"]
        for f in report.findings:
            mark = "❌" if f.severity == "error" else "⚠️"
            rows.append(f"| {mark} | `{f.rule}` | {md_text(_location(f))} | {md_text(f.message)} |")
    tail = ["", "<sub>Rules: docs/SPEC_KIT.md in pulser-ops.</sub>", ""]
    text = "\n".join(head + rows + tail)
    if limit is None or len(text) <= limit:
        return text
    kept = list(rows)
    while kept and len("\n".join(head + kept + tail)) + 120 > limit:
        kept.pop()
    dropped = len(rows) - len(kept)
    note = ["", f"… {dropped} more finding(s) not shown: see the JSON report."]
    return "\n".join(head + kept + note + tail)


# --- GitHub workflow commands ----------------------------------------------------------------


def _gh_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _gh_prop(text: str) -> str:
    return _gh_data(text).replace(":", "%3A").replace(",", "%2C")


def to_github(report: Report) -> str:
    """One ``::error``/``::warning`` workflow command per finding (annotations on the PR's
    files), then a one-line summary."""
    lines = []
    for f in report.findings:
        props = []
        if f.file:
            props.append(f"file={_gh_prop(f.file)}")
            if f.line:
                props.append(f"line={f.line}")
        props.append(f"title={_gh_prop('spec-kit ' + f.rule)}")
        lines.append(f"::{f.severity} {','.join(props)}::{_gh_data(f.message)}")
    s = report.summary
    lines.append(
        f"spec-kit: {s.kits} kit(s), {s.errors} error(s), {s.warnings} warning(s)"
        + ("" if s.ok else " - failing")
    )
    return "\n".join(lines) + "\n"
