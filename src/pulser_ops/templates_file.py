"""Template files: the YAML (or JSON) that ``pulser-ops templates apply`` reads and the control
room imports and exports. One template or a list of them, each with the fields of
``models.Template`` (the read-only ``version`` and timestamps are dropped, so ``templates show
--json`` output and an export apply as they are).

Checked as a whole before anything is written: the control plane's cheap rules, the model's
types, and the steps with the worker's own parser (``steps.parse_steps``), so a template that
no worker could run is refused when it is applied, not when its first run fails.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any, get_args

import yaml
from pydantic import ValidationError

from .errors import InvalidInput, StepSpecError
from .models import TEMPLATE_READ_ONLY, StepKind, Template
from .steps import parse_steps

NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,62}$")
STEP_KINDS = get_args(StepKind)
#: A document nested deeper than Python's parsers go (json and yaml recurse, and fail with
#: RecursionError): told as such, not as a traceback.
TOO_DEEP = "nested too deeply to read"


def parse_document(text: str, where: str, *, json_only: bool = False) -> Any:
    """A YAML or JSON document (YAML also reads JSON)."""
    if json_only:
        try:
            return json.loads(text)
        except ValueError as e:
            raise InvalidInput(f"{where}: not valid JSON ({e})") from None
        except RecursionError:
            raise InvalidInput(f"{where}: {TOO_DEEP}") from None
    try:
        return yaml.safe_load(text)
    except RecursionError:
        raise InvalidInput(f"{where}: {TOO_DEEP}") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        at = f" at line {mark.line + 1}" if mark is not None else ""
        raise InvalidInput(f"{where}: not valid YAML{at}") from None


def _check_like_the_sql(item: dict[str, Any], where: str) -> None:
    """The control plane's checks that are cheap to repeat here, so that a bad second template
    is refused before the first one is written (each upsert is its own statement)."""
    unknown = sorted(set(item) - Template.model_fields.keys())
    if unknown:
        raise InvalidInput(f"{where}: unknown field {unknown[0]!r}")
    name = item.get("name")
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise InvalidInput(f"{where}: name must match {NAME_RE.pattern} (got {name!r})")
    steps = item.get("steps", [])
    for i, step in enumerate(steps if isinstance(steps, list) else []):
        if not isinstance(step, dict) or step.get("kind") not in STEP_KINDS:
            raise InvalidInput(
                f"{where} ({name}): steps[{i}].kind must be one of {', '.join(STEP_KINDS)}"
            )


def templates_in(doc: Any, source: object) -> list[dict[str, Any]]:
    """The templates of a parsed document, each checked; raises ``InvalidInput`` naming the
    first problem and where it is."""
    items = doc if isinstance(doc, list) else [doc]
    if not items or doc is None:
        raise InvalidInput(f"template file {source}: no templates in it")
    out: list[dict[str, Any]] = []
    seen: set[str] = set()
    for i, item in enumerate(items):
        where = f"template file {source}, template {i + 1}"
        if not isinstance(item, dict):
            raise InvalidInput(f"{where}: expected an object")
        item = {k: v for k, v in item.items() if k not in TEMPLATE_READ_ONLY}
        _check_like_the_sql(item, where)
        try:
            Template.model_validate(item)
        except ValidationError as e:
            first = e.errors()[0]
            loc = ".".join(str(p) for p in first["loc"]) or "(template)"
            name = f" ({item['name']})" if isinstance(item.get("name"), str) else ""
            raise InvalidInput(f"{where}{name}: {loc}: {first['msg']}") from None
        try:
            parse_steps(item.get("steps", []))
        except StepSpecError as e:
            raise InvalidInput(f"{where} ({item['name']}): {e}") from None
        if item["name"] in seen:
            raise InvalidInput(f"{where}: {item['name']} appears twice in the file")
        seen.add(item["name"])
        out.append(item)
    return out


def load(text: str, source: str, *, json_only: bool = False) -> list[dict[str, Any]]:
    doc = parse_document(text, f"template file {source}", json_only=json_only)
    return templates_in(doc, source)


def as_file_object(t: Template) -> dict[str, Any]:
    """A template as a file holds it: its settable fields, in the model's order."""
    return t.model_dump(mode="json", exclude=set(TEMPLATE_READ_ONLY))


def dump(templates: Iterable[Template]) -> str:
    """YAML that ``load`` (and ``pulser-ops templates apply``) reads back to the same
    templates: one mapping for one template, a list for several."""
    items = [as_file_object(t) for t in templates]
    body: Any = items[0] if len(items) == 1 else items
    return yaml.safe_dump(body, sort_keys=False, allow_unicode=True, width=100)
