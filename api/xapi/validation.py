"""xAPI statement rules, checked before a statement is accepted.

The statement itself is checked by Ralph's xAPI models (``ralph-malph``,
pydantic: the structure, IRIs, mailto IFIs, one IFI per agent, language
maps, scores within their bounds, UUIDs, ISO 8601 timestamps and
durations, ...). What they leave out, or check only for 1.0.x, is checked
here: the 2.0 version and its context agents and groups, the voiding rules,
and what an LRS must refuse of a request as a whole (ids repeated in one
array). Ralph's model is applied part by part, each part's verdict kept
by its JSON (``_part_errors``): a tool repeats its verbs, objects and
contexts, and the whole model costs ~0.3 ms a statement.

A problem names the statement (its position and id) and the rule, which is
what the 400 answer says.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Annotated, Any
from uuid import UUID

from pydantic import TypeAdapter, ValidationError
from ralph.models.xapi.base.statements import BaseXapiStatement

VERSION = re.compile(r"^(1\.0|2\.0)(\.\d+)?$")
VOIDED = "http://adlnet.gov/expapi/verbs/voided"
_CONTEXT_20 = ("contextAgents", "contextGroups")  # xAPI 2.0, unknown to the 1.0 models


@dataclass(frozen=True)
class Problem:
    index: int
    statement_id: str | None
    path: str
    rule: str

    def __str__(self) -> str:
        sid = f" (id {self.statement_id})" if self.statement_id else ""
        where = f" at {self.path}" if self.path else ""
        return f"statement {self.index}{sid}{where}: {self.rule}"

    def as_dict(self) -> dict[str, Any]:
        return {"statement": self.index, "id": self.statement_id, "path": self.path,
                "rule": self.rule}  # fmt: skip


def _path(loc: tuple) -> str:
    # pydantic's union branches (model names, 'function-after[...]') are not paths
    parts = [str(p) for p in loc if not (isinstance(p, str) and (p[:1].isupper() or "[" in p))]
    return ".".join(parts)


_FIELDS = BaseXapiStatement.model_fields
_PARTS = {
    name: TypeAdapter(Annotated[(f.annotation, *f.metadata)] if f.metadata else f.annotation)
    for name, f in _FIELDS.items()
}
_REQUIRED = tuple(name for name, f in _FIELDS.items() if f.is_required())


@lru_cache(maxsize=65_536)
def _part_errors(name: str, text: str) -> tuple[tuple[str, str], ...]:
    """Ralph's verdict on one part of a statement (its verb, object, context,
    ...), by its JSON: a tool's statements repeat most parts, so most are
    checked once."""
    try:
        _PARTS[name].validate_python(json.loads(text))
    except ValidationError as exc:
        return tuple((_path((name, *e["loc"])), e["msg"]) for e in exc.errors(include_url=False))
    return ()


def _ralph_problems(index: int, sid: str | None, statement: dict) -> list[Problem]:
    """What ``BaseXapiStatement.model_validate`` says, part by part: the
    statement's own rules (no empty values, platform and revision only with
    an Activity), its fields, then each part with Ralph's model of it."""
    found: list[tuple[str, str]] = [(k, "Extra inputs are not permitted")
                                    for k in statement if k not in _PARTS]  # fmt: skip
    found += [(k, "Field required") for k in _REQUIRED if k not in statement]
    try:
        BaseXapiStatement.check_absence_of_empty_and_invalid_values(statement)
    except ValidationError as exc:
        found += [(_path(e["loc"]), e["msg"]) for e in exc.errors(include_url=False)]
    except (TypeError, ValueError, AttributeError, KeyError) as exc:  # odd input: its parts say
        found.append(("", str(exc)))
    for name, value in statement.items():
        if name in _PARTS:
            found += _part_errors(name, json.dumps(value, sort_keys=True))
    out, seen = [], set()
    for path, rule in found:
        if (path, rule) not in seen:
            seen.add((path, rule))
            out.append(Problem(index, sid, path, rule))
    # an agent matching no union branch lists every branch's complaint
    return out[:8]


def _context_20(index: int, sid: str | None, context: Any) -> list[Problem]:
    out = []
    for key, kind in (("contextAgents", "contextAgent"), ("contextGroups", "contextGroup")):
        value = context.get(key) if isinstance(context, dict) else None
        if value is None:
            continue
        if not isinstance(value, list) or not all(
            isinstance(v, dict) and v.get("objectType") == kind for v in value
        ):
            out.append(Problem(index, sid, f"context.{key}",
                               f"must be an array of objects with objectType {kind}"))  # fmt: skip
    return out


_NUMBERS = frozenset({"scaled", "raw", "min", "max", "length"})  # score, attachment length
_BOOLEANS = frozenset({"success", "completion"})
_HEX = re.compile(r"^[0-9a-fA-F]{40,128}$")


def _json_types(value: Any, path: str, out: list[tuple[str, str]]) -> None:
    """Outside extensions, a statement's numbers are a score's and an
    attachment's length, its booleans a result's success and completion;
    anything else must not be a number (the models would turn 10 into "10")."""
    key = path.rsplit(".", 1)[-1]
    if isinstance(value, dict):
        for k, v in value.items():
            if k != "extensions":
                _json_types(v, f"{path}.{k}" if path else k, out)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _json_types(v, f"{path}.{i}", out)
    elif isinstance(value, bool):
        if key not in _BOOLEANS:
            out.append((path, "must not be true or false here"))
    elif isinstance(value, (int, float)) and key not in _NUMBERS:
        out.append((path, "must be a string, not a number"))


def statement_id(raw: Any) -> str | None:
    sid = raw.get("id") if isinstance(raw, dict) else None
    return sid if isinstance(sid, str) else None


def check_statement(index: int, raw: Any) -> list[Problem]:
    """Every rule this statement breaks (empty: it may be accepted)."""
    sid = statement_id(raw)
    if not isinstance(raw, dict):
        return [Problem(index, None, "", "a statement is a JSON object")]
    problems: list[Problem] = []
    if "id" in raw:
        try:
            UUID(str(raw["id"]))
        except ValueError:
            problems.append(Problem(index, sid, "id", "must be a UUID"))
    version = raw.get("version")
    if version is not None and (not isinstance(version, str) or not VERSION.match(version)):
        problems.append(Problem(index, sid, "version", "must be 1.0.x or 2.0.x"))
    body = {k: v for k, v in raw.items() if k != "version"}
    context = raw.get("context")
    if isinstance(context, dict) and any(k in context for k in _CONTEXT_20):
        problems += _context_20(index, sid, context)
        body["context"] = {k: v for k, v in context.items() if k not in _CONTEXT_20}
    types: list[tuple[str, str]] = []
    _json_types(raw, "", types)
    problems += [Problem(index, sid, path, rule) for path, rule in types]
    problems += _ralph_problems(index, sid, body)
    verb = raw.get("verb")
    if isinstance(verb, dict) and verb.get("id") == VOIDED:
        obj = raw.get("object")
        if not isinstance(obj, dict) or obj.get("objectType") != "StatementRef":
            problems.append(
                Problem(index, sid, "object", "a voiding statement's object is a StatementRef")
            )
    for i, att in enumerate(raw.get("attachments") or []):
        if isinstance(att, dict) and not _HEX.match(str(att.get("sha2", ""))):
            problems.append(Problem(index, sid, f"attachments.{i}.sha2", "must be a SHA-2 hash"))
        if isinstance(att, dict) and not att.get("fileUrl"):
            problems.append(Problem(index, sid, f"attachments.{i}",
                                    "attachment content (multipart/mixed) is not supported: "
                                    "give a fileUrl"))  # fmt: skip
    return problems


def check_request(statements: list) -> list[Problem]:
    """The rules of a whole POST: each statement's, and no id twice."""
    problems: list[Problem] = []
    seen: dict[str, int] = {}
    for i, raw in enumerate(statements):
        problems += check_statement(i, raw)
        sid = statement_id(raw)
        if sid is None:
            continue
        key = sid.lower()
        if key in seen:
            problems.append(Problem(i, sid, "id", f"the same id as statement {seen[key]}"))
        seen.setdefault(key, i)
    return problems
