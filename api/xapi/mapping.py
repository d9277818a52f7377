"""xAPI statements onto the event dictionary (docs/ingestion.md, "xAPI").

A statement becomes one event of ours, which then goes through the same
validation, PII hashing, Kafka records and dedupe as a batch event:

* its id is the event's ``client_event_id`` (a statement retried, through
  xAPI or through ``/v1/events/batch`` with the same id, counts once);
* its actor is the learner: an ``account`` name is the ``user_id``; an
  ``mbox`` is hashed as an e-mail is (``pii_hash``); every kind of actor
  also gets a stable ``anonymous_id``, a UUID derived from the tenant-keyed
  hash of its identifier, so no raw identifier reaches Kafka;
* the first rule whose verb and activity type match, and whose event it can
  fill (a program for a lesson, a score for an assessment), names the
  event; the tenant's own rules are tried before the defaults;
* nothing matched or fillable: ``xapi_statement_recorded``, with the verb,
  the object, and the result's score, success, completion and duration.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any

from api.ingest.pii import hash_pii
from schemas.dictionary import LEARNER_PERSONAS

ADL = "http://adlnet.gov/expapi/verbs/"
ADL_ACT = "http://adlnet.gov/expapi/activities/"
CMI5_VERB = "https://w3id.org/xapi/adl/verbs/"
CMI5_ACT = "https://w3id.org/xapi/cmi5/activitytype/"
AS_SUBMIT = "http://activitystrea.ms/schema/1.0/submit"
VOIDED_VERB = ADL + "voided"

COURSES = frozenset({ADL_ACT + "course", CMI5_ACT + "course"})
ASSESSMENTS = frozenset({ADL_ACT + "assessment"})
MEETINGS = frozenset({ADL_ACT + "meeting"})
XAPI_EVENT = "xapi_statement_recorded"
_NS = uuid.UUID("6f0b7c52-6a55-4a8e-9c2e-5b1f3f1d2a10")  # anonymous ids of xAPI actors


@dataclass(frozen=True)
class Rule:
    verb: str
    activity_type: str | None  # None: any
    event: str

    def matches(self, verb: str, activity_type: str | None) -> bool:
        return self.verb == verb and self.activity_type in (None, activity_type)


def _rules(verbs: tuple[str, ...], types: frozenset[str] | None, event: str) -> list[Rule]:
    return [Rule(v, t, event) for v in verbs for t in (sorted(types) if types else [None])]


# First match that can be filled wins (docs/ingestion.md has this table).
DEFAULT_RULES: tuple[Rule, ...] = (
    *_rules((ADL + "completed", CMI5_VERB + "satisfied"), COURSES, "program_completed"),
    *_rules((ADL + "registered",), COURSES, "program_enrolled"),
    *_rules(
        (ADL + "completed", ADL + "passed", ADL + "failed"), ASSESSMENTS, "assessment_completed"
    ),  # fmt: skip
    *_rules((ADL + "passed", ADL + "failed", ADL + "scored"), None, "assessment_completed"),
    *_rules((ADL + "completed",), None, "lesson_completed"),
    *_rules((ADL + "attended",), MEETINGS, "live_session_attended"),
    *_rules((AS_SUBMIT,), None, "assignment_submitted"),
    # What no dictionary event says: kept as the xAPI event, verb and object.
    *_rules(
        tuple(
            ADL + v
            for v in (
                "attempted",
                "experienced",
                "launched",
                "initialized",
                "terminated",
                "progressed",
                "answered",
                "voided",
            )
        )
        + tuple(CMI5_VERB + v for v in ("abandoned", "waived", "satisfied")),
        None,
        XAPI_EVENT,
    ),  # fmt: skip
)


@dataclass(frozen=True)
class Mapping:
    rules: tuple[Rule, ...] = ()  # the tenant's, tried first
    persona: str = "student"

    def candidates(self, verb: str, activity_type: str | None) -> list[str]:
        out = [r.event for r in (*self.rules, *DEFAULT_RULES) if r.matches(verb, activity_type)]
        return [*out, XAPI_EVENT]


class MappingError(ValueError):
    pass


def parse_rules(raw: Any) -> tuple[Rule, ...]:
    """A tenant's rules as an admin gives them: [{verb, activity_type?, event}]."""
    if not isinstance(raw, list):
        raise MappingError("rules: a list of {verb, activity_type, event}")
    out = []
    for i, r in enumerate(raw):
        if not isinstance(r, dict) or set(r) - {"verb", "activity_type", "event"}:
            raise MappingError(f"rule {i}: an object with verb, activity_type (optional), event")
        verb, atype, event = r.get("verb"), r.get("activity_type"), r.get("event")
        if not isinstance(verb, str) or not re.match(r"^[a-z][a-z0-9+.-]*:\S+$", verb):
            raise MappingError(f"rule {i}: verb must be an IRI")
        if atype is not None and (not isinstance(atype, str) or not atype):
            raise MappingError(f"rule {i}: activity_type must be an IRI or absent")
        if event not in BUILDERS:
            raise MappingError(f"rule {i}: event must be one of {', '.join(sorted(BUILDERS))}")
        out.append(Rule(verb, atype, event))
    return tuple(out)


def check_persona(persona: str) -> str:
    if persona not in LEARNER_PERSONAS:
        raise MappingError(f"persona must be one of {', '.join(LEARNER_PERSONAS)}")
    return persona


# --- what a statement says -------------------------------------------------------
_DURATION = re.compile(
    r"^P(?:(?P<Y>\d+(?:\.\d+)?)Y)?(?:(?P<Mo>\d+(?:\.\d+)?)M)?(?:(?P<W>\d+(?:\.\d+)?)W)?"
    r"(?:(?P<D>\d+(?:\.\d+)?)D)?(?:T(?:(?P<H>\d+(?:\.\d+)?)H)?(?:(?P<Mi>\d+(?:\.\d+)?)M)?"
    r"(?:(?P<S>\d+(?:\.\d+)?)S)?)?$"
)
_UNIT_S = {"Y": 365 * 86400, "Mo": 30 * 86400, "W": 7 * 86400, "D": 86400, "H": 3600,
           "Mi": 60, "S": 1}  # fmt: skip


def duration_ms(value: Any) -> int | None:
    """ISO 8601 duration in milliseconds (a year 365 days, a month 30)."""
    m = _DURATION.match(value) if isinstance(value, str) else None
    if not m:
        return None
    return round(sum(float(v) * _UNIT_S[k] for k, v in m.groupdict().items() if v) * 1000)


def _ifi_key(agent: dict) -> str | None:
    """The agent's inverse functional identifier as one string."""
    if isinstance(agent.get("mbox"), str):
        return "mbox:" + agent["mbox"].strip().lower()
    if isinstance(agent.get("mbox_sha1sum"), str):
        return "mbox_sha1sum:" + agent["mbox_sha1sum"].lower()
    if isinstance(agent.get("openid"), str):
        return "openid:" + agent["openid"]
    acct = agent.get("account")
    if isinstance(acct, dict):
        return f"account:{acct.get('homePage')}|{acct.get('name')}"
    return None


def _keyed(salt: str, ifi: str) -> str:
    """The identifier hashed with the tenant's secret (an e-mail as pii.py hashes it)."""
    if ifi.startswith("mbox:"):
        return hash_pii(salt, "email", ifi.removeprefix("mbox:mailto:"))
    return hmac.new(salt.encode(), ifi.encode(), hashlib.sha256).hexdigest()


@dataclass(slots=True)
class Learner:
    user_id: str | None
    email: str | None
    anonymous_id: str
    pseudonym: str  # what a stored statement shows instead of the identifier


@lru_cache(maxsize=65_536)
def _ids(salt: str, ifi: str) -> tuple[str, str]:
    """An identifier's keyed hash and anonymous id (a tool's statements
    repeat their learners)."""
    keyed = _keyed(salt, ifi)
    return keyed, str(uuid.uuid5(_NS, keyed))


def learner_of(actor: dict, salt: str) -> Learner:
    ifi = _ifi_key(actor)
    if ifi is None:  # an anonymous group: its members, in order
        members = actor.get("member") or []
        ifi = "group:" + ",".join(sorted(filter(None, (_ifi_key(m) for m in members))))
    keyed, anonymous_id = _ids(salt, ifi)
    acct = actor.get("account") if isinstance(actor.get("account"), dict) else None
    user_id = acct.get("name") if acct and actor.get("objectType") != "Group" else None
    email = None
    if ifi.startswith("mbox:") and actor.get("objectType") != "Group":
        email = ifi.removeprefix("mbox:mailto:")
    return Learner(user_id, email, anonymous_id, user_id or keyed)


def _activity_type(obj: dict) -> str | None:
    definition = obj.get("definition")
    return definition.get("type") if isinstance(definition, dict) else None


def _object_id(obj: dict) -> str:
    if obj.get("objectType") in ("Agent", "Group"):
        return _ifi_key(obj) or "anonymous-group"
    return str(obj.get("id") or obj.get("objectType") or "")


def _program(st: dict) -> str | None:
    """The program: a course among the context's grouping, else its first
    grouping activity, else its first parent."""
    ca = (st.get("context") or {}).get("contextActivities") or {}
    grouping = _as_list(ca.get("grouping"))
    for act in grouping:
        if _activity_type(act) in COURSES:
            return act.get("id")
    for act in (*grouping, *_as_list(ca.get("parent"))):
        if act.get("id"):
            return act["id"]
    return None


def _as_list(value: Any) -> list[dict]:  # 0.95-era statements give one object, not a list
    if isinstance(value, dict):
        return [value]
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


@dataclass(slots=True)
class Said:
    """What the mapping and the analysts need of one statement."""

    verb_id: str
    object_id: str
    object_type: str
    activity_type: str | None
    score_scaled: float | None
    score_raw: float | None
    success: bool | None
    completion: bool | None
    duration_ms: int | None
    registration: str | None
    program_id: str | None

    @property
    def percent(self) -> float | None:
        """The score as 0-100: scaled, else raw within min..max."""
        if self.score_scaled is not None:
            return max(0.0, min(100.0, self.score_scaled * 100))
        return None


def said(st: dict) -> Said:
    obj, result = st["object"], st.get("result") or {}
    score = result.get("score") or {}
    scaled = score.get("scaled")
    raw, lo, hi = score.get("raw"), score.get("min"), score.get("max")
    if scaled is None and all(isinstance(v, (int, float)) for v in (raw, lo, hi)) and hi > lo:
        scaled = (raw - lo) / (hi - lo)
    return Said(
        verb_id=st["verb"]["id"],
        object_id=_object_id(obj),
        object_type=obj.get("objectType") or "Activity",
        activity_type=_activity_type(obj),
        score_scaled=float(scaled) if isinstance(scaled, (int, float)) else None,
        score_raw=float(raw) if isinstance(raw, (int, float)) else None,
        success=result.get("success"),
        completion=result.get("completion"),
        duration_ms=duration_ms(result.get("duration")),
        registration=(st.get("context") or {}).get("registration"),
        program_id=_program(st),
    )


# --- one builder per event a rule may name: (envelope fields, properties) or None --
Built = tuple[dict[str, Any], dict[str, Any]] | None


def _minutes(s: Said) -> int | None:
    return None if s.duration_ms is None else round(s.duration_ms / 60_000)


def _lesson(s: Said) -> Built:
    if not s.program_id:
        return None
    return {"program_id": s.program_id}, {"lesson_id": s.object_id, "duration_minutes": _minutes(s)}


def _program_completed(s: Said) -> Built:
    return {"program_id": s.object_id}, {}


def _program_enrolled(s: Said) -> Built:
    return {"program_id": s.object_id}, {"enrolled_by": None}


def _assessment(s: Said) -> Built:
    if s.percent is None:
        return None
    secs = None if s.duration_ms is None else round(s.duration_ms / 1000)
    return (
        {"assessment_id": s.object_id, "readiness_score": s.percent},
        {"questions_answered": None, "duration_seconds": secs},
    )


def _live(s: Said) -> Built:
    if not s.program_id:
        return None
    return {"program_id": s.program_id}, {"session_id": s.object_id,
                                          "duration_minutes": _minutes(s) or 0}  # fmt: skip


def _assignment(s: Said) -> Built:
    if not s.program_id:
        return None
    return {"program_id": s.program_id}, {"assignment_id": s.object_id, "late": False}


def _xapi(s: Said) -> Built:
    props = {"verb_id": s.verb_id, "object_id": s.object_id, "object_type": s.object_type,
             "activity_type": s.activity_type, "score_scaled": s.score_scaled,
             "score_raw": s.score_raw, "success": s.success, "completion": s.completion,
             "duration_ms": s.duration_ms, "registration": s.registration}  # fmt: skip
    return ({"program_id": s.program_id} if s.program_id else {}), props


BUILDERS: dict[str, Callable[[Said], Built]] = {
    "lesson_completed": _lesson,
    "program_completed": _program_completed,
    "program_enrolled": _program_enrolled,
    "assessment_completed": _assessment,
    "live_session_attended": _live,
    "assignment_submitted": _assignment,
    XAPI_EVENT: _xapi,
}


@dataclass(slots=True)
class Mapped:
    event: dict[str, Any]  # a batch event, as a client of /v1/events/batch sends it
    said: Said
    learner: Learner


def to_event(st: dict, mapping: Mapping, *, salt: str, timestamp: datetime) -> Mapped:
    """The event a validated statement (with its id) becomes."""
    s = said(st)
    learner = learner_of(st["actor"], salt)
    for name in mapping.candidates(s.verb_id, s.activity_type):
        built = BUILDERS[name](s)
        if built is not None:
            break
    envelope, props = built  # type: ignore[misc]  # XAPI_EVENT always builds
    event = {
        "event_name": name,
        "client_event_id": st["id"],
        "event_timestamp": timestamp.isoformat(),
        "anonymous_id": learner.anonymous_id,
        "user_id": learner.user_id,
        "persona": mapping.persona,
        "context_page": s.object_id[:2048],
        "opt_out_status": False,
        **envelope,
        "properties": {k: v for k, v in props.items() if v is not None},
    }
    if learner.email:
        event["email"] = learner.email
    platform = (st.get("context") or {}).get("platform")
    if isinstance(platform, str):
        event["context_device"] = platform[:2048]
    return Mapped(event, s, learner)


# --- the statement as stored: no raw identifier, no name ---------------------------
PSEUDONYM_HOME = "urn:skillstream:learner"


_MAY_HOLD_AGENTS = frozenset({"actor", "object", "context", "authority"})


def pseudonymised_statement(st: dict, salt: str) -> dict:
    """``pseudonymised`` of a statement, looking only where agents may be."""
    return {k: pseudonymised(v, salt) if k in _MAY_HOLD_AGENTS else v for k, v in st.items()}


def pseudonymised(value: Any, salt: str) -> Any:
    """A copy where every agent's identifier is its tenant-keyed hash as an
    account (an account's own name, a user id, is kept) and no agent has a name."""
    if isinstance(value, list):
        return [pseudonymised(v, salt) for v in value]
    if not isinstance(value, dict):
        return value
    ifi = _ifi_key(value)
    if ifi is not None or (value.get("objectType") == "Group" and "member" in value):
        out = {k: pseudonymised(v, salt) for k, v in value.items()
               if k not in ("mbox", "mbox_sha1sum", "openid", "name")}  # fmt: skip
        if ifi is not None and not ifi.startswith("account:"):
            out["account"] = {"homePage": PSEUDONYM_HOME, "name": _ids(salt, ifi)[0]}
        return out
    return {k: pseudonymised(v, salt) for k, v in value.items()}


_NOT_COMPARED = ("stored", "authority", "version")


def content_hash(st: dict) -> str:
    """What two statements with one id must share (xAPI's statement
    comparison: stored, authority and version are the LRS's own)."""
    body = {k: v for k, v in st.items() if k not in _NOT_COMPARED}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()
