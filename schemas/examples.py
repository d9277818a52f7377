"""A valid example of every event in the dictionary, as a client sends it.

Used by the OpenAPI docs, the demo generator and tests: one place that shows
what each event carries.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from schemas.dictionary import BY_NAME

PROPERTIES: dict[str, dict[str, Any]] = {
    "student_onboarding_completed": {"steps_completed": 6},
    "resume_parsed": {"resume_id": "res_1", "skills_extracted": 14},
    "assessment_completed": {"questions_answered": 30, "duration_seconds": 900},
    "career_match_viewed": {"occupation_id": "15-1252.00", "compatibility_score": 81.5},
    "action_plan_accepted": {"tasks_total": 12},
    "task_completion_logged": {"task_id": "task_1", "due_at": "2026-05-30T00:00:00Z"},
    "advisor_note_added": {"student_id": "usr_1", "note_length": 240},
    "cohort_assessment_assigned": {"cohort_size": 25},
    "readiness_alert_triggered": {"student_id": "usr_1", "threshold": 60.0},
    "report_export_generated": {"report_id": "rep_1", "format": "csv"},
    "session_started": {"auth_method": "sso"},
    "settings_tracking_opt_out": {},
    "settings_tracking_opt_in": {},
    "program_enrolled": {"enrolled_by": "self"},
    "live_session_attended": {"session_id": "live_1", "duration_minutes": 55},
    "program_phase_advanced": {"from_phase": "foundations", "to_phase": "practice"},
    "assignment_submitted": {"assignment_id": "asg_1", "late": False},
    "lesson_completed": {"lesson_id": "les_1", "duration_minutes": 18},
    "program_completed": {},
    "survey_response_submitted": {"survey_id": "srv_1", "rating": 4, "free_text": "Great"},
    "roadmap_task_assigned": {"task_id": "task_1", "due_at": "2026-05-30T00:00:00Z"},
    "career_changer_financial_planner_viewed": {"duration_ms": 95000, "session_id": "ses_1"},
    "xapi_statement_recorded": {
        "verb_id": "http://adlnet.gov/expapi/verbs/experienced",
        "object_id": "https://lms.example/media/intro-video",
        "activity_type": "http://adlnet.gov/expapi/activities/media",
        "completion": True,
        "duration_ms": 95000,
    },
    "data_import_completed": {
        "job_id": "job_onet_29_1",
        "dataset": "onet",
        "released_at": "2026-05-01T12:00:00Z",
        "started_at": "2026-05-02T08:00:00Z",
        "completed_at": "2026-05-02T09:30:00Z",
        "events_imported": 1016,
    },
}

CONDITIONAL_VALUES: dict[str, Any] = {
    "plan_id": "plan_1",
    "assessment_id": "assess_1",
    "readiness_score": 72.0,
    "program_id": "prog_1",
    "cohort_id": "cohort_1",
}


def example_event(
    name: str,
    *,
    client_event_id: str | None = None,
    at: datetime | None = None,
    user_id: str | None = "usr_12345",
    anonymous_id: str | None = None,
    persona: str | None = None,
    **overrides: Any,
) -> dict[str, Any]:
    spec = BY_NAME[name]
    event: dict[str, Any] = {
        "event_name": name,
        "client_event_id": client_event_id or uuid.uuid4().hex,
        "event_timestamp": (at or datetime.now(UTC)).isoformat().replace("+00:00", "Z"),
        "anonymous_id": anonymous_id or str(uuid.uuid4()),
        "user_id": user_id,
        "persona": persona or spec.personas[0],
        "context_page": f"/{name.split('_')[0]}",
        "context_device": "web.desktop",
        "opt_out_status": name == "settings_tracking_opt_out",
        "properties": dict(PROPERTIES[name]),
    }
    for cond in spec.requires:
        event[cond] = CONDITIONAL_VALUES[cond]
    event.update(overrides)
    return event
