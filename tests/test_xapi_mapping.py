"""xAPI in (issue 32), the parts that need no process: the statement rules
(Ralph's models and ours), the mapping onto the dictionary, identity and
pseudonymised storage, for statements generated from Ralph's model set."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

import pytest

from api.ingest.pii import hash_pii
from api.ingest.validate import Bounds, validate_event
from api.xapi.mapping import (
    ADL,
    ADL_ACT,
    XAPI_EVENT,
    Mapping,
    MappingError,
    content_hash,
    duration_ms,
    parse_rules,
    pseudonymised,
    pseudonymised_statement,
    to_event,
)
from api.xapi.validation import check_request, check_statement
from tests.support.xapi import for_rule, generated, mapped_verbs

NOW = datetime.now(UTC)
BOUNDS = Bounds(300, 30 * 86400)


def lesson(**over) -> dict:
    st = {
        "id": str(uuid.uuid4()),
        "actor": {"objectType": "Agent", "name": "Ann", "mbox": "mailto:Ann@Example.com"},
        "verb": {"id": ADL + "completed", "display": {"en-US": "completed"}},
        "object": {"id": "https://lms.example/lessons/1",
                   "definition": {"type": ADL_ACT + "lesson"}},
        "result": {"completion": True, "duration": "PT12M30S"},
        "context": {"contextActivities": {"grouping": [{"id": "https://lms.example/courses/c1"}]}},
    }  # fmt: skip
    st.update(over)
    return st


def valid_event(mapped) -> dict:
    rec, errors = validate_event(mapped.event, tenant_id="t", pii_salt="salt",
                                 received_at=NOW, bounds=BOUNDS)  # fmt: skip
    assert not errors, errors
    return rec


@pytest.fixture(scope="module")
def ralph_statements() -> list[dict]:
    out = generated(4)
    assert len(out) == 4
    return out


def test_ralph_generated_statements_pass_our_rules(ralph_statements):
    assert check_request(ralph_statements) == []


@pytest.mark.parametrize("verb,activity_type,event", mapped_verbs(),
                         ids=lambda v: str(v).rsplit("/", 1)[-1])  # fmt: skip
def test_every_mapped_verb_from_generated_statements(ralph_statements, verb, activity_type, event):
    for base in ralph_statements:
        st = for_rule(base, verb, activity_type, event)
        assert check_statement(0, st) == [], check_statement(0, st)
        mapped = to_event(st, Mapping(), salt="salt", timestamp=NOW)
        assert mapped.event["event_name"] == event
        assert mapped.event["client_event_id"] == st["id"]
        rec = valid_event(mapped)
        assert rec["client_event_id"] == st["id"]


def test_lesson_keeps_program_duration_and_hashes_the_mbox_as_an_email():
    st = lesson()
    m = to_event(st, Mapping(), salt="salt", timestamp=NOW)
    rec = valid_event(m)
    assert rec["event_name"] == "lesson_completed"
    assert rec["program_id"] == "https://lms.example/courses/c1"
    assert rec["properties"][1] == {"lesson_id": "https://lms.example/lessons/1",
                                    "duration_minutes": 12}  # fmt: skip
    assert rec["pii_hash"] == hash_pii("salt", "email", "ann@example.com")
    assert rec["user_id"] is None and "Ann" not in json.dumps(rec, default=str)


def test_account_name_is_the_user_id_and_the_anonymous_id_is_stable():
    actor = {"account": {"homePage": "https://lms.example", "name": "usr_42"}}
    a = to_event(lesson(actor=actor), Mapping(), salt="salt", timestamp=NOW)
    b = to_event(lesson(actor=actor), Mapping(), salt="salt", timestamp=NOW)
    assert a.event["user_id"] == "usr_42"
    assert a.event["anonymous_id"] == b.event["anonymous_id"]
    assert to_event(lesson(actor=actor), Mapping(), salt="other", timestamp=NOW
                    ).event["anonymous_id"] != a.event["anonymous_id"]  # fmt: skip


def test_a_lesson_without_a_program_and_an_unknown_verb_stay_xapi_events():
    no_program = to_event(lesson(context={}), Mapping(), salt="s", timestamp=NOW)
    unknown = to_event(lesson(verb={"id": "https://lms.example/verbs/bookmarked"}), Mapping(),
                       salt="s", timestamp=NOW)  # fmt: skip
    for m in (no_program, unknown):
        rec = valid_event(m)
        assert rec["event_name"] == XAPI_EVENT
        props = rec["properties"][1]
        assert props["object_id"] == "https://lms.example/lessons/1"
        assert props["completion"] is True and props["duration_ms"] == 750_000
    assert unknown.event["properties"]["verb_id"] == "https://lms.example/verbs/bookmarked"


def test_scores_become_the_assessment_readiness():
    st = lesson(verb={"id": ADL + "passed"},
                result={"score": {"raw": 45, "min": 0, "max": 60}, "success": True})  # fmt: skip
    rec = valid_event(to_event(st, Mapping(), salt="s", timestamp=NOW))
    assert rec["event_name"] == "assessment_completed" and rec["readiness_score"] == 75.0


def test_a_tenants_rules_come_first_and_are_checked():
    rules = parse_rules([{"verb": ADL + "experienced", "event": "lesson_completed"}])
    st = lesson(verb={"id": ADL + "experienced"})
    assert to_event(st, Mapping(), salt="s", timestamp=NOW).event["event_name"] == XAPI_EVENT
    assert to_event(st, Mapping(rules), salt="s", timestamp=NOW).event["event_name"] == (
        "lesson_completed"
    )
    for bad in ([{"verb": "experienced", "event": "lesson_completed"}],
                [{"verb": ADL + "x", "event": "no_such_event"}], {"verb": ADL}):  # fmt: skip
        with pytest.raises(MappingError):
            parse_rules(bad)


@pytest.mark.parametrize(
    "change,path",
    [
        ({"verb": {"id": "completed"}}, "verb.id"),
        ({"actor": {"mbox": "ann@example.com"}}, "actor.mbox"),
        ({"id": "not-a-uuid"}, "id"),
        ({"version": "0.95"}, "version"),
        ({"result": {"score": {"scaled": 1.5}}}, "result.score.scaled"),
        ({"unknown": 1}, "unknown"),
        ({"verb": {"id": ADL + "voided"}}, "object"),
        ({"attachments": [{"usageType": "https://x.example/u", "display": {"en-US": "a"},
                           "contentType": "text/plain", "length": 1,
                           "sha2": "a" * 64}]}, "attachments.0"),
    ],
)  # fmt: skip
def test_broken_rules_name_the_statement_and_the_path(change, path):
    problems = check_request([lesson(), lesson(**change)])
    assert problems and all(p.index == 1 for p in problems)
    assert path in [p.path for p in problems], [str(p) for p in problems]
    assert str(problems[0]).startswith("statement 1")


def test_an_id_twice_in_one_request_is_refused():
    a = lesson()
    problems = check_request([a, lesson(id=a["id"].upper())])
    assert [(p.index, p.path) for p in problems] == [(1, "id")]


def test_xapi_2_context_agents_are_accepted():
    agent = {"objectType": "contextAgent", "agent": {"mbox": "mailto:t@x.example"}}
    ctx = lesson()["context"] | {"contextAgents": [agent]}
    assert check_statement(0, lesson(context=ctx, version="2.0.0")) == []


def test_stored_statement_has_no_raw_identifier_or_name_and_hash_ignores_lrs_fields():
    st = lesson(context={"instructor": {"name": "Ivy", "mbox": "mailto:ivy@example.com"}})
    kept = json.dumps(pseudonymised(st, "salt"))
    assert pseudonymised_statement(st, "salt") == pseudonymised(st, "salt")
    assert 'example.com"' not in kept.replace("lms.example", "") and "Ivy" not in kept
    assert "Ann" not in kept
    assert content_hash(st) == content_hash({**st, "stored": "x", "version": "1.0.3"})
    assert content_hash(st) != content_hash({**st, "result": {"completion": False}})


def test_durations():
    assert duration_ms("PT1H2M3.5S") == 3_723_500
    assert duration_ms("P1D") == 86_400_000
    assert duration_ms("P4W") == 4 * 7 * 86_400_000
    assert duration_ms("1H") is None


def test_empty_extensions_and_basic_format_times_are_accepted_as_xapi_allows():
    # an empty extensions map breaks no rule of xAPI 1.0.3 (Data 4.2.7, empty
    # objects are a SHOULD NOT); a Timestamp MUST be ISO 8601, basic format too
    ext = {"extensions": {}}
    st = lesson(result={"completion": True, **ext}, context={**lesson()["context"], **ext},
                timestamp="20261208T103000.123Z")  # fmt: skip
    st["object"]["definition"]["extensions"] = {}
    assert check_statement(0, st) == []
    assert [p.path for p in check_statement(0, lesson(result={"extensions": None}))] == [
        "result.extensions"
    ]
    assert [p.path for p in check_statement(0, lesson(timestamp="12/08/2026"))] == ["timestamp"]


def test_interaction_components_must_fit_the_interaction_type():
    obj = {"id": "https://lms.example/q/1", "definition": {"interactionType": "choice",
           "choices": [{"id": "a", "description": {"en-US": "A"}}],
           "scale": [{"id": "b", "description": {"en-US": "B"}}]}}  # fmt: skip
    assert [p.path for p in check_statement(0, lesson(object=obj))] == ["object.definition.scale"]
    del obj["definition"]["scale"]
    assert check_statement(0, lesson(object=obj)) == []


def test_learners_share_a_verdict_but_not_a_bad_name():
    assert check_statement(0, lesson(actor={"account": {"homePage": "https://x.example",
                                                        "name": "u1"}})) == []  # fmt: skip
    bad = lesson(actor={"account": {"homePage": "https://x.example", "name": ""}})
    assert "actor.account.name" in [p.path for p in check_statement(0, bad)]
