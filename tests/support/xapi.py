"""xAPI statements for the tests, from Ralph's model set (``ralph-malph``):
polyfactory builds statements from Ralph's pydantic models (with the
providers Ralph's own test factories register for IRIs, language tags and
mailto addresses); a mapped verb Ralph has no statement model for is set on
a generated statement, whose actor, context and result stay Ralph's."""

from __future__ import annotations

import json
import uuid
from typing import Any

from polyfactory.factories.pydantic_factory import ModelFactory
from ralph.models.xapi.base.common import IRI, LanguageTag, MailtoEmail
from ralph.models.xapi.base.statements import BaseXapiStatement

from api.xapi.mapping import ADL_ACT, DEFAULT_RULES, XAPI_EVENT


class _Base(ModelFactory):
    __is_base_factory__ = True

    @classmethod
    def get_provider_map(cls) -> dict[Any, Any]:
        return {
            **super().get_provider_map(),
            IRI: lambda: IRI("https://lms.example/xapi/thing"),
            LanguageTag: lambda: LanguageTag("en-US"),
            MailtoEmail: lambda: MailtoEmail("mailto:learner@example.com"),
        }


def generated(n: int, model: type = BaseXapiStatement, seed: int = 0) -> list[dict]:
    """``n`` statements Ralph's model validates, as JSON objects."""
    out, s = [], seed
    while len(out) < n and s < seed + 50 * n:
        s += 1
        try:
            st = _Base.create_factory(model, __random_seed__=s, __use_defaults__=True).build()
            d = json.loads(st.model_dump_json(exclude_none=True))
            BaseXapiStatement.model_validate(d)
        except Exception:  # a combination the factory cannot fill validly: next seed
            continue
        out.append(d)
    return out


def for_rule(base: dict, verb: str, activity_type: str | None, event: str) -> dict:
    """``base`` (a generated statement) saying ``verb`` of an activity of
    ``activity_type``, with what that rule's event needs (a program, a score)."""
    st = json.loads(json.dumps(base))
    st["id"] = str(uuid.uuid4())
    st["verb"] = {"id": verb, "display": {"en-US": verb.rsplit("/", 1)[-1]}}
    definition = {"type": activity_type or ADL_ACT + "lesson"}
    st["object"] = {"objectType": "Activity", "id": f"https://lms.example/a/{uuid.uuid4().hex[:8]}",
                    "definition": definition}  # fmt: skip
    st.pop("timestamp", None)
    if verb.endswith("/voided"):
        st["object"] = {"objectType": "StatementRef", "id": str(uuid.uuid4())}
    if event == "assessment_completed":
        st["result"] = {"score": {"scaled": 0.75}, "success": True, "duration": "PT20M"}
    if event in ("lesson_completed", "live_session_attended", "assignment_submitted"):
        ctx = st.setdefault("context", {})
        ctx.pop("statement", None)
        course = {"id": "https://lms.example/courses/c1",
                  "definition": {"type": ADL_ACT + "course"}}  # fmt: skip
        ctx["contextActivities"] = {"grouping": [course]}
    return st


def mapped_verbs() -> list[tuple[str, str | None, str]]:
    """Each default rule: verb, activity type, event."""
    return [(r.verb, r.activity_type, r.event) for r in DEFAULT_RULES]


__all__ = ["XAPI_EVENT", "for_rule", "generated", "mapped_verbs"]
