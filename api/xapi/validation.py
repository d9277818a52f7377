"""xAPI statement rules, checked before a statement is accepted.

The statement itself is checked by Ralph's xAPI models (``ralph-malph``,
pydantic: the structure, IRIs, mailto IFIs, one IFI per agent, language
maps, scores within their bounds, UUIDs, ISO 8601 timestamps and
durations, ...). What they leave out, or check only for 1.0.x, is checked
here: the 2.0 version and its context agents and groups, the voiding rules,
and what an LRS must refuse of a request as a whole (ids repeated in one
array). Ralph's model is applied part by part, each part's verdict kept
by its ``repr`` (``_part_verdict``, with the types, empty-value and
interaction rules): a tool repeats its actors, verbs, objects and
contexts, and the whole model costs ~0.3 ms a statement. Ids and times,
new in every statement, are told by a pattern when it is one Ralph surely
accepts. Empty ``extensions`` objects are accepted (Ralph refuses them;
xAPI does not, see ``without_empty_extensions``), and so are ISO 8601
basic-format times.

A problem names the statement (its position and id) and the rule, which is
what the 400 answer says.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
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


# Parts whose every value differs (an id, a time): what Ralph's model of them
# surely accepts is told by a pattern, so neither their JSON nor a cache entry
# is made for each statement; the rest still goes to Ralph.
_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,6})?(Z|[+-]\d\d:\d\d)$")
# ISO 8601's basic format (20261208T103000Z): a Timestamp MUST be ISO 8601 and
# only SHOULD be RFC 3339 (xAPI 1.0.3 Data 4.5), so it is accepted; Ralph's
# model (pydantic) knows only the extended format.
_BASIC = re.compile(r"^\d{8}T\d{4}(\d\d(\.\d+)?)?(Z|[+-]\d\d(\d\d)?)?$")
_TIMES = ("timestamp", "stored")


def _valid_time(text: str) -> bool:
    try:
        datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return False
    return True


def _fast_part(name: str, value: Any) -> bool:
    """True when Ralph's model of the part surely accepts ``value``."""
    if not isinstance(value, str):
        return False
    if name == "id":
        return bool(_UUID.match(value))
    if name in _TIMES:
        return bool(_RFC3339.match(value) or _BASIC.match(value)) and _valid_time(value)
    return False


def without_empty_extensions(value: Any) -> Any:
    """A copy without ``"extensions": {}`` anywhere: an empty map breaks none
    of the rules for extensions (keys are IRIs; an LRS does not reject a
    statement by their values), xAPI 1.0.3 asks only that empty objects not
    be sent (SHOULD NOT), and clients do send them; Ralph refuses any empty
    value. Other parts are returned as they are."""
    if isinstance(value, list):
        return [without_empty_extensions(v) for v in value]
    if not isinstance(value, dict):
        return value
    return {k: without_empty_extensions(v) for k, v in value.items()
            if not (k == "extensions" and value[k] == {})}  # fmt: skip


def _has_empty_extensions(value: Any) -> bool:
    if isinstance(value, dict):
        return any((k == "extensions" and v == {}) or _has_empty_extensions(v)
                   for k, v in value.items())  # fmt: skip
    if isinstance(value, list):
        return any(_has_empty_extensions(v) for v in value)
    return False


_EMPTY_RULE = "Statements may not contain empty values except inside Extensions."
_PLATFORM_RULE = ("revision and platform properties can only be used if the Statement's "
                  "Object is an Activity")  # fmt: skip


def _empties(value: Any, path: str, out: list[tuple[str, str]]) -> None:
    """Ralph's rule of no empty values (None, "", {}) in a statement's
    objects, extensions' insides excepted (lists are not looked into)."""
    for k, v in value.items():
        here = f"{path}.{k}"
        if v is None or (isinstance(v, (str, dict)) and not v):
            out.append((here, _EMPTY_RULE))
        elif isinstance(v, dict) and k != "extensions":
            _empties(v, here, out)


_AGENTS = ("actor", "authority")


def _shape(value: Any) -> Any:
    """An agent or group with every name (its own, its account's, its
    members') as one placeholder: any non-empty string is a valid name to
    Ralph (``NonEmptyStrictStr``) and to the rules here, so learners share
    one verdict per shape; anything else is kept as it is."""
    if isinstance(value, list):
        return [_shape(v) for v in value]
    if not isinstance(value, dict):
        return value
    return {k: "·" if k == "name" and isinstance(v, str) and v else _shape(v)
            for k, v in value.items()}  # fmt: skip


PART_CACHE_MAX = 65_536
_verdicts: dict[tuple[str, str], tuple[tuple[str, str], ...]] = {}


def _part_verdict(name: str, value: Any) -> tuple[tuple[str, str], ...]:
    """Every rule one part of a statement (its actor, verb, object, context,
    ...) breaks: the JSON types, interaction components, no empty values
    and Ralph's model of the part. Kept by the part's ``repr`` (one string
    per JSON value): a tool's statements repeat most parts, so most are
    checked once and the rest cost a lookup."""
    key = (name, repr(_shape(value) if name in _AGENTS else value))
    found = _verdicts.get(key)
    if found is None:
        if len(_verdicts) >= PART_CACHE_MAX:
            _verdicts.clear()
        found = _verdicts[key] = tuple(_check_part(name, value))
    return found


def _check_part(name: str, value: Any) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    _json_types(value, name, out)
    _interactions(value, name, out)
    if name not in _PARTS:
        return out
    if _has_empty_extensions(value):
        value = without_empty_extensions(value)
    if name == "context" and isinstance(value, dict) and any(k in value for k in _CONTEXT_20):
        out += _context_20(value)
        value = {k: v for k, v in value.items() if k not in _CONTEXT_20}
    if value is None or (isinstance(value, (str, dict)) and not value):
        out.append((name, _EMPTY_RULE))
    elif isinstance(value, dict):
        _empties(value, name, out)
    try:
        _PARTS[name].validate_python(value)
    except ValidationError as exc:
        out += [(_path((name, *e["loc"])), e["msg"]) for e in exc.errors(include_url=False)]
    return out


def _found(statement: dict) -> list[tuple[str, str]]:
    """What ``BaseXapiStatement.model_validate`` says (and the types and
    interaction rules), part by part: the statement's own rules (its
    fields; platform and revision only with an Activity), then each part's."""
    found: list[tuple[str, str]] = [(k, "Extra inputs are not permitted")
                                    for k in statement if k not in _PARTS]  # fmt: skip
    found += [(k, "Field required") for k in _REQUIRED if k not in statement]
    context, obj = statement.get("context"), statement.get("object")
    if isinstance(context, dict) and (context.get("platform") or context.get("revision")):
        kind = obj.get("objectType", "Activity") if isinstance(obj, dict) else None
        if kind != "Activity":
            found.append(("context", _PLATFORM_RULE))
    for name, value in statement.items():
        if not _fast_part(name, value):
            found += _part_verdict(name, value)
    return found


def _context_20(context: dict) -> list[tuple[str, str]]:
    out = []
    for key, kind in (("contextAgents", "contextAgent"), ("contextGroups", "contextGroup")):
        value = context.get(key)
        if value is None:
            continue
        if not isinstance(value, list) or not all(
            isinstance(v, dict) and v.get("objectType") == kind for v in value
        ):
            out.append((f"context.{key}", f"must be an array of objects with objectType {kind}"))
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


# Interaction components each interactionType may have (xAPI 1.0.3 Data
# 2.4.4.1, Interaction Activities): Ralph's models do not tell them apart.
_COMPONENTS = ("choices", "scale", "source", "target", "steps")
_ALLOWED = {"choice": {"choices"}, "sequencing": {"choices"}, "likert": {"scale"},
            "matching": {"source", "target"}, "performance": {"steps"}}  # fmt: skip


def _interactions(value: Any, path: str, out: list[tuple[str, str]]) -> None:
    if isinstance(value, dict):
        kind = value.get("interactionType")
        if isinstance(kind, str):
            for k in _COMPONENTS:
                if k in value and k not in _ALLOWED.get(kind, ()):
                    out.append((f"{path}.{k}" if path else k,
                                f"an interaction of type {kind} has no {k}"))  # fmt: skip
        for k, v in value.items():
            if k != "extensions" and isinstance(v, (dict, list)):
                _interactions(v, f"{path}.{k}" if path else k, out)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            if isinstance(v, (dict, list)):
                _interactions(v, f"{path}.{i}", out)


def statement_id(raw: Any) -> str | None:
    sid = raw.get("id") if isinstance(raw, dict) else None
    return sid if isinstance(sid, str) else None


def check_statement(index: int, raw: Any) -> list[Problem]:
    """Every rule this statement breaks (empty: it may be accepted)."""
    sid = statement_id(raw)
    if not isinstance(raw, dict):
        return [Problem(index, None, "", "a statement is a JSON object")]
    problems: list[Problem] = []
    if "id" in raw and not (isinstance(raw["id"], str) and _UUID.match(raw["id"])):
        try:
            UUID(str(raw["id"]))
        except ValueError:
            problems.append(Problem(index, sid, "id", "must be a UUID"))
    version = raw.get("version")
    if version is not None and (not isinstance(version, str) or not VERSION.match(version)):
        problems.append(Problem(index, sid, "version", "must be 1.0.x or 2.0.x"))
    found = _found({k: v for k, v in raw.items() if k != "version"} if "version" in raw else raw)
    obj = raw.get("object")
    if isinstance(obj, dict) and obj.get("objectType") == "SubStatement":
        # Ralph's model of a SubStatement is laxer than its statement model:
        # the statement's rules apply too
        sub = _found({k: v for k, v in obj.items() if k != "objectType"})
        found += [(f"object.{path}" if path else "object", rule) for path, rule in sub]
    seen: set[tuple[str, str]] = set()
    for path, rule in found:
        if (path, rule) not in seen:
            seen.add((path, rule))
            problems.append(Problem(index, sid, path, rule))
    problems = problems[:10]  # an agent matching no union branch lists every branch's complaint
    verb = raw.get("verb")
    voiding = isinstance(verb, dict) and verb.get("id") == VOIDED
    if voiding and (not isinstance(obj, dict) or obj.get("objectType") != "StatementRef"):
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
