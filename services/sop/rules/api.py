"""HTTP routes of detection rules (`/api/v1/rules...`) and the worker's internal deprecation steps."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Path, Query
from fastapi.responses import JSONResponse

from services.common.errors import PROBLEM_RESPONSES, Problem, ValidationFailed
from services.common.idempotency import IDEMPOTENCY_HEADER
from services.common.pagination import DEFAULT_LIMIT, MAX_LIMIT
from services.common.service_app import CurrentCaller, RuntimeDep, SessionDep
from services.sop.rules import service
from services.sop.rules.domain import (
    DEFAULT_NO_HITS_DAYS,
    DEFAULT_PRECISION_FLOOR,
    DEFAULT_PRECISION_WEEKS,
    Criteria,
    RuleKind,
    RuleStatus,
)
from services.sop.rules.idempotency import Outcome
from services.sop.rules.ml_models import DEFAULT_MODEL_PRECISION_FLOOR, ModelCriteria
from services.sop.rules.schemas import (
    MAX_INT,
    PRINTABLE_PATTERN,
    RULE_ID_PATTERN,
    CandidateList,
    DecisionCreate,
    DeprecationCreate,
    DeprecationPage,
    DeprecationRead,
    MetricBulkCreate,
    MetricBulkResult,
    MetricCreate,
    MetricPage,
    MetricWritten,
    MonitoringCheck,
    MonitoringStarted,
    OutcomeCreate,
    RuleCreate,
    RulePage,
    RuleRead,
    RuleUpdate,
)

router = APIRouter(prefix=service.RULES_PATH, tags=["rules"])
internal_router = APIRouter(prefix=service.INTERNAL_RULES_PATH, tags=["internal"])

RuleIdPath = Annotated[str, Path(pattern=RULE_ID_PATTERN, description="The rule's id")]
DeprecationIdPath = Annotated[int, Path(ge=1, le=MAX_INT)]
Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT, description="Page size")]
Cursor = Annotated[
    str | None, Query(max_length=512, description="`next_cursor` of the previous page")
]
CONFLICT: dict[int | str, dict[str, Any]] = {
    409: {"model": Problem, "description": "Not allowed in the rule's current state"}
}
IdempotencyKeyHeader = Annotated[
    str | None,
    Header(
        alias=IDEMPOTENCY_HEADER,
        description=(
            "Retrying with the same key and body returns the first response, with no second effect."
        ),
    ),
]
# How long a decision waits for the workflow to record the outcome before answering 202.
DECISION_WAIT_SECONDS = 10.0


def write_response(outcome: Outcome, *, location: str | None = None) -> JSONResponse:
    """The JSON response of a write (`Location` for a creation, a marker on a replay)."""
    return outcome.to_response(location=location)


@router.post(
    "",
    status_code=201,
    response_model=RuleRead,
    responses={**PROBLEM_RESPONSES, **CONFLICT},
    summary="Add a rule to the inventory",
)
async def create_rule(
    body: RuleCreate,
    session: SessionDep,
    caller: CurrentCaller,
    idempotency_key: IdempotencyKeyHeader = None,
) -> JSONResponse:
    """Add a detection rule (status `active`) under the platform's rule id; 409 if the id is taken.
    Staff only (analyst, program_manager, admin, system)."""
    outcome = await service.create_rule(
        session, caller=caller, data=body, idempotency_key=idempotency_key
    )
    return write_response(outcome, location=service.rule_path(str(outcome.body["id"])))


@router.get("", response_model=RulePage, responses=PROBLEM_RESPONSES, summary="List rules")
async def list_rules(
    session: SessionDep,
    caller: CurrentCaller,
    status: Annotated[list[RuleStatus] | None, Query(description="Repeatable")] = None,
    team: Annotated[str | None, Query(max_length=100, pattern=PRINTABLE_PATTERN)] = None,
    owner: Annotated[str | None, Query(max_length=200, pattern=PRINTABLE_PATTERN)] = None,
    mo_id: Annotated[
        int | None, Query(ge=1, le=MAX_INT, description="Rules catching this MO")
    ] = None,
    kind: Annotated[RuleKind | None, Query(description="`rule` or `model`")] = None,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
) -> RulePage:
    """Rules and ML models matching every given filter, by id, one page at a time (`kind=model`
    for the models only). A partner sees only its own team's."""
    filters = service.RuleFilters(
        statuses=status or (), team=team, owner=owner, mo_id=mo_id, kind=kind
    )
    return await service.list_rules(
        session, caller=caller, filters=filters, cursor=cursor, limit=limit
    )


@router.get(
    "/deprecation-candidates",
    response_model=CandidateList,
    responses=PROBLEM_RESPONSES,
    summary="Rules that no longer catch anything",
)
async def list_deprecation_candidates(
    session: SessionDep,
    caller: CurrentCaller,
    no_hits_days: Annotated[int, Query(ge=1, le=3650, description="Rules only")] = (
        DEFAULT_NO_HITS_DAYS
    ),
    precision_floor: Annotated[
        float | None,
        Query(ge=0.0, le=1.0, description="Default 0.1 for rules, 0.5 for models"),
    ] = None,
    precision_weeks: Annotated[int, Query(ge=1, le=520)] = DEFAULT_PRECISION_WEEKS,
    team: Annotated[str | None, Query(max_length=100, pattern=PRINTABLE_PATTERN)] = None,
    kind: Annotated[RuleKind, Query(description="List rules (default) or ML models")] = (
        RuleKind.RULE
    ),
    volume_floor: Annotated[
        int | None, Query(ge=0, le=MAX_INT, description="Models only: volume actioned a week")
    ] = None,
) -> CandidateList:
    """Active or retained rules that are non-impacting: no hits in `no_hits_days` days (counted
    from deployment for a rule that never fired), or a hit-weighted true-positive rate below
    `precision_floor` over the last `precision_weeks` weeks. With `kind=model`, the ML models
    whose volume actioned averaged below `volume_floor` a week (default 10), or whose
    hit-weighted precision was below `precision_floor`, over the last `precision_weeks` weeks.
    Each item says why, with numbers."""
    criteria: Criteria | ModelCriteria
    if kind is RuleKind.MODEL:
        criteria = ModelCriteria(
            precision_floor=DEFAULT_MODEL_PRECISION_FLOOR
            if precision_floor is None
            else precision_floor,
            weeks=precision_weeks,
            **({} if volume_floor is None else {"volume_floor": volume_floor}),
        )
    elif volume_floor is not None:
        raise ValidationFailed(
            "volume_floor is a criterion of ML models (kind=model).",
            errors=[
                {"field": "query.volume_floor", "message": "models only", "code": "unexpected"}
            ],
        )
    else:
        criteria = Criteria(
            no_hits_days=no_hits_days,
            precision_floor=DEFAULT_PRECISION_FLOOR if precision_floor is None else precision_floor,
            precision_weeks=precision_weeks,
        )
    return await service.list_candidates(session, caller=caller, criteria=criteria, team=team)


@router.post(
    "/metrics",
    response_model=MetricBulkResult,
    responses=PROBLEM_RESPONSES,
    summary="Post many weekly metric snapshots",
)
async def post_metrics_bulk(
    body: MetricBulkCreate, session: SessionDep, caller: CurrentCaller
) -> MetricBulkResult:
    """Store up to 1,000 snapshots in one transaction (all or nothing). Each (rule, week) is
    idempotent: a repeat with the same numbers is `unchanged`, different numbers `replaced`."""
    return await service.record_metrics_bulk(session, caller=caller, data=body)


@router.get(
    "/{rule_id}", response_model=RuleRead, responses=PROBLEM_RESPONSES, summary="Read a rule"
)
async def read_rule(rule_id: RuleIdPath, session: SessionDep, caller: CurrentCaller) -> RuleRead:
    """One rule with its linked MOs; 404 if missing or another team's (for a partner)."""
    rule = await service.get_rule(session, caller=caller, rule_id=rule_id)
    return await service.to_read(session, rule)


@router.patch(
    "/{rule_id}",
    response_model=RuleRead,
    responses={**PROBLEM_RESPONSES, **CONFLICT},
    summary="Change a rule",
)
async def update_rule(
    rule_id: RuleIdPath, body: RuleUpdate, session: SessionDep, caller: CurrentCaller
) -> RuleRead:
    """Change name, owner, team, description, linked MOs (`mo_ids` replaces the set) and the
    `replaced_by` / `merged_into` links. The status changes only through a deprecation."""
    return await service.update_rule(session, caller=caller, rule_id=rule_id, data=body)


@router.post(
    "/{rule_id}/metrics",
    response_model=MetricWritten,
    status_code=201,
    responses=PROBLEM_RESPONSES,
    summary="Post a weekly metric snapshot",
)
async def post_metric(
    rule_id: RuleIdPath, body: MetricCreate, session: SessionDep, caller: CurrentCaller
) -> JSONResponse:
    """Store the snapshot of one week (hits, true-positive rate, actioned accounts, last fired).
    201 when the week is new; 200 when it repeats (`unchanged`) or corrects (`replaced`) it."""
    written = await service.record_metric(session, caller=caller, rule_id=rule_id, data=body)
    return JSONResponse(
        written.model_dump(mode="json"), status_code=201 if written.result == "created" else 200
    )


@router.get(
    "/{rule_id}/metrics",
    response_model=MetricPage,
    responses=PROBLEM_RESPONSES,
    summary="A rule's weekly snapshots",
)
async def list_metrics(
    rule_id: RuleIdPath,
    session: SessionDep,
    caller: CurrentCaller,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
) -> MetricPage:
    """The rule's snapshots, newest week first, one page at a time."""
    return await service.list_metrics(
        session, caller=caller, rule_id=rule_id, cursor=cursor, limit=limit
    )


@router.post(
    "/{rule_id}/deprecation",
    response_model=DeprecationRead,
    status_code=201,
    responses={**PROBLEM_RESPONSES, **CONFLICT},
    summary="Propose deprecating a rule",
)
async def propose_deprecation(
    rule_id: RuleIdPath,
    body: DeprecationCreate,
    session: SessionDep,
    caller: CurrentCaller,
    runtime: RuntimeDep,
    idempotency_key: IdempotencyKeyHeader = None,
) -> JSONResponse:
    """Propose a deprecation with a reason: the rule goes to `deprecation_proposed` and its
    RuleDeprecationWorkflow (`rule-deprecation-<id>`) starts through the outbox. It monitors the
    rule for `monitoring_seconds` (default: the `rule_monitoring_seconds` setting, 28 days),
    checks the metrics posted meanwhile, and either retains the rule with the evidence or waits
    for a decision. 409 unless the rule is active or retained. Optional `replaced_by` /
    `merged_into` are set when it is deprecated. An ML model (`kind: model`) goes through the
    same steps but is checked on the model criteria: clean when its volume actioned averaged
    below `criteria.volume_floor` a week (default 10) or its precision was below
    `criteria.precision_floor` (default 0.5) during monitoring; rule-only criteria are a 422."""
    outcome = await service.propose_deprecation(
        session,
        caller=caller,
        rule_id=rule_id,
        data=body,
        task_queue=runtime.settings.task_queue,
        default_monitoring_seconds=runtime.settings.rule_monitoring_seconds,
        idempotency_key=idempotency_key,
    )
    return write_response(outcome, location=f"{service.rule_path(rule_id)}/deprecation")


@router.get(
    "/{rule_id}/deprecation",
    response_model=DeprecationRead,
    responses=PROBLEM_RESPONSES,
    summary="A rule's latest deprecation",
)
async def read_deprecation(
    rule_id: RuleIdPath, session: SessionDep, caller: CurrentCaller
) -> DeprecationRead:
    """The latest deprecation proposal: its stage, monitoring window, evidence and outcome."""
    return await service.current_deprecation(session, caller=caller, rule_id=rule_id)


@router.get(
    "/{rule_id}/deprecations",
    response_model=DeprecationPage,
    responses=PROBLEM_RESPONSES,
    summary="A rule's deprecation history",
)
async def list_deprecations(
    rule_id: RuleIdPath, session: SessionDep, caller: CurrentCaller
) -> DeprecationPage:
    """Every deprecation proposal of the rule, newest first (the latest 50)."""
    return await service.list_deprecations(session, caller=caller, rule_id=rule_id)


@router.post(
    "/{rule_id}/deprecation/decisions",
    response_model=DeprecationRead,
    responses={**PROBLEM_RESPONSES, **CONFLICT},
    summary="Approve or reject a rule deprecation",
)
async def decide_deprecation(
    rule_id: RuleIdPath,
    body: DecisionCreate,
    session: SessionDep,
    caller: CurrentCaller,
    runtime: RuntimeDep,
) -> JSONResponse:
    """After a clean monitoring period: `approve` deprecates the rule, `reject` (with a comment)
    retains it. program_manager, approver or admin only (403 otherwise); 409 unless a
    deprecation awaits approval. 200 with the outcome, or 202 if it is still being recorded."""
    status_code, deprecation = await service.decide_deprecation(
        session,
        caller=caller,
        rule_id=rule_id,
        data=body,
        temporal=runtime.temporal,
        wait_seconds=DECISION_WAIT_SECONDS,
    )
    return JSONResponse(deprecation.model_dump(mode="json"), status_code=status_code)


@internal_router.post(
    "/{rule_id}/deprecations/{deprecation_id}/monitoring",
    response_model=MonitoringStarted,
    responses=PROBLEM_RESPONSES,
    summary="Worker: start monitoring",
)
async def begin_monitoring(
    rule_id: RuleIdPath,
    deprecation_id: DeprecationIdPath,
    session: SessionDep,
    caller: CurrentCaller,
) -> MonitoringStarted:
    """System only: the rule enters `monitoring`; repeats return the window already started."""
    return await service.begin_monitoring(
        session, caller=caller, rule_id=rule_id, deprecation_id=deprecation_id
    )


@internal_router.post(
    "/{rule_id}/deprecations/{deprecation_id}/check",
    response_model=MonitoringCheck,
    responses=PROBLEM_RESPONSES,
    summary="Worker: check the monitoring period",
)
async def check_monitoring(
    rule_id: RuleIdPath,
    deprecation_id: DeprecationIdPath,
    session: SessionDep,
    caller: CurrentCaller,
) -> MonitoringCheck:
    """System only: evaluate the metrics posted during monitoring; the verdict is stored once."""
    return await service.check_monitoring(
        session, caller=caller, rule_id=rule_id, deprecation_id=deprecation_id
    )


@internal_router.post(
    "/{rule_id}/deprecations/{deprecation_id}/outcome",
    response_model=DeprecationRead,
    responses={**PROBLEM_RESPONSES, **CONFLICT},
    summary="Worker: record the outcome",
)
async def record_outcome(
    rule_id: RuleIdPath,
    deprecation_id: DeprecationIdPath,
    body: OutcomeCreate,
    session: SessionDep,
    caller: CurrentCaller,
) -> DeprecationRead:
    """System only: the rule is deprecated or retained; a repeat of the same outcome is a no-op."""
    return await service.record_outcome(
        session, caller=caller, rule_id=rule_id, deprecation_id=deprecation_id, data=body
    )
