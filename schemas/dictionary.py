"""The event dictionary: every event SkillStream accepts, and its rules.

Seed 003's tracking plan gives the learner-journey events, their personas and
retention; seeds 000/001 add the engagement events the score is built from.
The Avro schemas (``schemas/avro/event.vN.avsc``) give each event's typed
``properties`` record; a test keeps this table and the newest schema in step.

Naming (enforced by tests/test_event_contract.py):
  * ``object_action_outcome`` in snake_case, the last word an outcome
    (a past participle), except the two privacy-setting events below whose
    names the tracking plan fixes;
  * a persona prefix (``student_``, ``career_changer_``, ``advisor_``) names
    the event's only persona; platform-wide events (all personas) have none;
  * ``_v2`` (``_vN``) only when an event's property schema changes
    incompatibly, and then the un-suffixed event stays valid.
"""

from __future__ import annotations

from dataclasses import dataclass, field

PERSONAS = ("student", "career_changer", "advisor")
LEARNER_PERSONAS = ("student", "career_changer")
ALL = PERSONAS

# Conditional ids of the envelope: an event listing one here must carry it.
CONDITIONAL_FIELDS = ("plan_id", "assessment_id", "readiness_score", "program_id", "cohort_id")

# Raw PII a client may send; replaced by an HMAC-SHA256 with the tenant's
# secret before anything reaches Kafka (input field -> envelope field).
# ``email_sha256`` is an e-mail the SDK already hashed (api/ingest/pii.py).
PII_FIELDS = {"email": "pii_hash", "email_sha256": "pii_hash", "phone": "phone_hash"}

# Names the tracking plan fixes although their last word is no participle.
NAMING_EXCEPTIONS = frozenset({"settings_tracking_opt_out", "settings_tracking_opt_in"})

DEFAULT_RETENTION_YEARS = 3


@dataclass(frozen=True)
class EventSpec:
    name: str
    description: str
    personas: tuple[str, ...]
    properties_record: str  # Avro record name of the typed properties
    retention_years: int = DEFAULT_RETENTION_YEARS
    requires: tuple[str, ...] = ()  # conditional envelope fields this event must carry
    essential: bool = False  # kept for opted-out users (security, compliance)
    category: str = "product"  # product | engagement | security | compliance | operations
    engagement_component: str | None = None  # what it feeds in the engagement score
    since_version: int = 1  # first envelope version that knows the event
    free_text_fields: tuple[str, ...] = field(default=())  # redacted below company_admin

    @property
    def retention_days(self) -> int:
        return self.retention_years * 365


EVENTS: tuple[EventSpec, ...] = (
    # --- seed 003: the tracking plan's dictionary -----------------------------
    EventSpec(
        "student_onboarding_completed",
        "Onboarding wizard finished with required fields",
        ("student",),
        "StudentOnboardingCompleted",
        retention_years=3,
    ),
    EventSpec(
        "resume_parsed",
        "Resume upload successfully processed",
        LEARNER_PERSONAS,
        "ResumeParsed",
        retention_years=5,
    ),
    EventSpec(
        "assessment_completed",
        "Self-assessment module submitted",
        LEARNER_PERSONAS,
        "AssessmentCompleted",
        retention_years=5,
        requires=("assessment_id", "readiness_score"),
    ),
    EventSpec(
        "career_match_viewed",
        "Occupation detail viewed with compatibility score",
        LEARNER_PERSONAS,
        "CareerMatchViewed",
        retention_years=2,
    ),
    EventSpec(
        "action_plan_accepted",
        "User confirms recommended action plan",
        LEARNER_PERSONAS,
        "ActionPlanAccepted",
        retention_years=4,
        requires=("plan_id",),
    ),
    EventSpec(
        "task_completion_logged",
        "Individual roadmap task marked complete",
        LEARNER_PERSONAS,
        "TaskCompletionLogged",
        retention_years=4,
        requires=("plan_id",),
    ),
    EventSpec(
        "advisor_note_added",
        "Advisor logs a student note",
        ("advisor",),
        "AdvisorNoteAdded",
        retention_years=7,
    ),
    EventSpec(
        "cohort_assessment_assigned",
        "Advisor bulk-assigns assessment to cohort",
        ("advisor",),
        "CohortAssessmentAssigned",
        retention_years=7,
        requires=("assessment_id",),
    ),
    EventSpec(
        "readiness_alert_triggered",
        "Alert generated for low readiness student",
        ("advisor",),
        "ReadinessAlertTriggered",
        retention_years=3,
        requires=("readiness_score",),
    ),
    EventSpec(
        "report_export_generated",
        "Quarterly report exported",
        ("advisor",),
        "ReportExportGenerated",
        retention_years=7,
    ),
    EventSpec(
        "session_started",
        "Authenticated session begins (sign-in)",
        ALL,
        "SessionStarted",
        retention_years=2,
        essential=True,  # a security log: kept for opted-out users
        category="security",
        engagement_component="sign_ins",
    ),
    EventSpec(
        "settings_tracking_opt_out",
        "User disabled analytics tracking",
        ALL,
        "SettingsTrackingOptOut",
        retention_years=7,
        essential=True,
        category="compliance",
    ),
    # --- seeds 000/001: engagement events (envelope v2) ------------------------
    EventSpec(
        "settings_tracking_opt_in",
        "User re-enabled analytics tracking",
        ALL,
        "SettingsTrackingOptIn",
        retention_years=7,
        essential=True,
        category="compliance",
        since_version=2,
    ),
    EventSpec(
        "program_enrolled",
        "Learner enrolled in a program and cohort",
        LEARNER_PERSONAS,
        "ProgramEnrolled",
        requires=("program_id",),
        category="engagement",
        since_version=2,
    ),
    EventSpec(
        "live_session_attended",
        "Learner attended a live session",
        LEARNER_PERSONAS,
        "LiveSessionAttended",
        requires=("program_id",),
        category="engagement",
        engagement_component="live_sessions",
        since_version=2,
    ),
    EventSpec(
        "program_phase_advanced",
        "Learner advanced to the next program phase",
        LEARNER_PERSONAS,
        "ProgramPhaseAdvanced",
        requires=("program_id",),
        category="engagement",
        engagement_component="phase_advances",
        since_version=2,
    ),
    EventSpec(
        "assignment_submitted",
        "Learner submitted an assignment",
        LEARNER_PERSONAS,
        "AssignmentSubmitted",
        requires=("program_id",),
        category="engagement",
        engagement_component="submissions",
        since_version=2,
    ),
    EventSpec(
        "lesson_completed",
        "Learner completed a lesson",
        LEARNER_PERSONAS,
        "LessonCompleted",
        requires=("program_id",),
        category="engagement",
        engagement_component="lessons_completed",
        since_version=2,
    ),
    EventSpec(
        "program_completed",
        "Learner completed a program",
        LEARNER_PERSONAS,
        "ProgramCompleted",
        requires=("program_id",),
        category="engagement",
        since_version=2,
    ),
    EventSpec(
        "survey_response_submitted",
        "Survey answered (rating and optional free text)",
        ALL,
        "SurveyResponseSubmitted",
        retention_years=2,
        category="engagement",
        since_version=2,
        free_text_fields=("free_text",),
    ),
    # --- envelope v3: what two KPIs of seed 003 need -----------------------------
    EventSpec(
        "roadmap_task_assigned",
        "A roadmap task assigned to the learner, with its due date (action plan adherence)",
        LEARNER_PERSONAS,
        "RoadmapTaskAssigned",
        retention_years=4,  # as the plan's other task_progress events
        requires=("plan_id",),
        since_version=3,
    ),
    EventSpec(
        "career_changer_financial_planner_viewed",
        "Time spent in the financial planner on one visit (ROI projection engagement)",
        ("career_changer",),
        "CareerChangerFinancialPlannerViewed",
        retention_years=2,  # as the plan's session metrics
        since_version=3,
    ),
    # --- envelope v4: xAPI statements (docs/ingestion.md, "xAPI") -----------------
    EventSpec(
        "xapi_statement_recorded",
        "An xAPI statement no mapping rule turns into a dictionary event: verb, object, result",
        ALL,
        "XapiStatementRecorded",
        category="engagement",
        since_version=4,
    ),
    # --- envelope v5: data-import job telemetry (docs/ingestion.md, "Data freshness") ---
    EventSpec(
        "data_import_completed",
        "A data-import job finished: its dataset, the release's publication time, when the job "
        "started and completed (the platform's data freshness SLA)",
        ALL,  # a platform event, not a learner's: sent without a user
        "DataImportCompleted",
        retention_years=7,  # as the plan's other operational records (reports, notes)
        category="operations",
        since_version=5,
    ),
)

BY_NAME: dict[str, EventSpec] = {e.name: e for e in EVENTS}


def spec(name: str) -> EventSpec | None:
    return BY_NAME.get(name)
