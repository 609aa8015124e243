"""The MO-matching workflows end to end on each backend: intake and sop under uvicorn, the real
Temporal dev server, a worker running the real activities and the real local model. MOs are
embedded when recorded and again when their text changes; a filed request gets its embedding and
its suggestions (the gift-card-draining request, with no keyword in common, finds the gift-card
MO first); a text change recomputes them; without semantic matching the same flow is lexical."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
from temporalio.client import Client
from temporalio.worker import Worker

from riskdesk.temporal_server import free_port
from services.common.identity import Identity, Role, sign_identity
from services.common.migrations import upgrade
from services.common.settings import Settings
from services.common.temporal import connect_temporal
from services.intake.app import create_app as create_intake_app
from services.sop.app import create_app as create_sop_app
from tests.service.sop_stack import eventually, serve
from tests.service.test_intake_api import migrate
from workflows.mo_embedding import (
    MoEmbeddingActivities,
    MoEmbeddingWorkflow,
    RequestMoMatchingWorkflow,
)
from workflows.mo_embedding_contracts import MO_EMBEDDING_WORKFLOW, REQUEST_MO_MATCHING_WORKFLOW
from workflows.sandbox import workflow_runner
from workflows.service_api import ServiceApi, make_http_client

GIFT_CARD_MO = {
    "name": "Gift card draining",
    "summary": "Gift cards bought with stolen payment cards are redeemed or resold within "
    "minutes, before the chargeback arrives.",
    "indicators": {
        "signals": ["gift card redemption within minutes of purchase", "stolen card bin"],
        "behaviours": ["gift card resale", "rapid balance transfer"],
        "entity_types": ["gift card", "payment instrument"],
    },
}
SIM_SWAP_MO = {
    "name": "Account takeover via SIM swap",
    "summary": "Fraudsters port a victim's phone number to their own SIM, reset the password "
    "with the SMS code and change payout details.",
    "indicators": {
        "signals": ["password reset after sim change", "new device login"],
        "behaviours": ["payout detail change"],
        "entity_types": ["customer account", "phone number"],
    },
}
COUPON_MO = {
    "name": "Coupon abuse ring",
    "summary": "Organised groups create accounts to redeem first-order promotions repeatedly.",
    "indicators": {"signals": ["coupon redemption burst"], "behaviours": ["new account farming"]},
}
# Shares no keyword with the gift-card MO (tests/unit/test_mo_matching.py checks the same text).
VOUCHER_REQUEST = {
    "title": "E-vouchers worth nothing moments after the order",
    "description": "The store credit codes we sell are spent by someone else right after "
    "checkout, and the bank later claws the money back.",
}


@dataclass
class Stack:
    intake: httpx.AsyncClient
    sop: httpx.AsyncClient
    temporal: Client
    settings: Settings
    team: str

    def as_(self, role: Role, team: str = "risk-mining") -> dict[str, str]:
        token = sign_identity(
            Identity(subject=f"key-{role}", team=team, role=role),
            secret=self.settings.identity_secret,
            ttl_seconds=300,
        )
        return {"X-Riskdesk-Identity": token}

    async def mo(self, **fields: Any) -> dict[str, Any]:
        response = await self.sop.post(
            "/api/v1/mos", json={"team": self.team, **fields}, headers=self.as_(Role.ANALYST)
        )
        assert response.status_code == 201, response.text
        body: dict[str, Any] = response.json()
        return body

    async def mo_embedded(self, mo_id: int) -> bool:
        response = await self.sop.get(
            f"/internal/mos/{mo_id}/matching-text", headers=self.as_(Role.SYSTEM)
        )
        return bool(response.json()["embedded"])

    async def request_embedding(self, request_id: int) -> str | None:
        response = await self.intake.get(
            f"/internal/requests/{request_id}/mo-matching", headers=self.as_(Role.SYSTEM)
        )
        embedding: str | None = response.json()["embedding"]
        return embedding

    async def suggestions(self, request_id: int) -> dict[str, Any]:
        response = await self.intake.get(
            f"/api/v1/requests/{request_id}/mo-suggestions", headers=self.as_(Role.ANALYST)
        )
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body


async def terminate_leftovers(client: Client, task_queue: str) -> None:
    """Stop matching workflows other tests left running on their own queues (no worker there).

    The dev server lives for the session while each test's SQLite starts MO ids at 1: a leftover
    `mo-embedding-1` would swallow this test's signal for its MO 1.
    """
    for workflow_type in (MO_EMBEDDING_WORKFLOW, REQUEST_MO_MATCHING_WORKFLOW):
        query = f"WorkflowType = '{workflow_type}' AND ExecutionStatus = 'Running'"
        async for execution in client.list_workflows(query):
            if execution.task_queue != task_queue:
                await client.get_workflow_handle(execution.id, run_id=execution.run_id).terminate(
                    reason="left over by another test"
                )


@asynccontextmanager
async def running_stack(
    make_settings: Callable[..., Settings], unique_team: str, **overrides: Any
) -> AsyncIterator[Stack]:
    settings = make_settings(intake_port=free_port(), sop_port=free_port(), **overrides)
    await migrate(settings)
    await asyncio.to_thread(upgrade, service="sop", database_url=settings.database_url_of("sop"))
    temporal = await connect_temporal(settings.temporal_address, settings.temporal_namespace)
    await terminate_leftovers(temporal, settings.task_queue)
    async with AsyncExitStack() as stack:
        intake_url = await stack.enter_async_context(
            serve(create_intake_app(settings), settings.intake_port)
        )
        sop_url = await stack.enter_async_context(
            serve(create_sop_app(settings), settings.sop_port)
        )
        http = await stack.enter_async_context(make_http_client(settings))
        worker = Worker(
            temporal,
            task_queue=settings.task_queue,
            workflows=[MoEmbeddingWorkflow, RequestMoMatchingWorkflow],
            activities=MoEmbeddingActivities(ServiceApi(http=http, settings=settings)).all(),
            workflow_runner=workflow_runner(),
        )
        await stack.enter_async_context(worker)
        clients = [
            await stack.enter_async_context(
                httpx.AsyncClient(base_url=url, trust_env=False, timeout=30)
            )
            for url in (intake_url, sop_url)
        ]
        yield Stack(
            intake=clients[0],
            sop=clients[1],
            temporal=temporal,
            settings=settings,
            team=unique_team,
        )


async def test_embeddings_and_suggestions_follow_every_text_change(
    make_settings: Callable[..., Settings], unique_team: str, embedding_model: None
) -> None:
    async with running_stack(make_settings, unique_team) as stack:
        gift = await stack.mo(**GIFT_CARD_MO)
        sim = await stack.mo(**SIM_SWAP_MO)
        coupon = await stack.mo(**COUPON_MO)
        for mo in (gift, sim, coupon):
            await eventually(lambda mo=mo: stack.mo_embedded(mo["id"]), bool, within=120)

        partner = stack.as_(Role.PARTNER, team=unique_team)
        filed = await stack.intake.post(
            "/api/v1/requests",
            json={"request_type": "mo_investigation", **VOUCHER_REQUEST},
            headers=partner,
        )
        assert filed.status_code == 201, filed.text
        request = filed.json()
        ready = await eventually(
            lambda: stack.suggestions(request["id"]),
            lambda s: s["status"] == "ready",
            within=60,
        )
        assert ready["method"] == "semantic"
        assert ready["model"] == "all-MiniLM-L6-v2"
        assert ready["items"][0]["mo_id"] == gift["id"], ready
        assert ready["items"][0]["name"] == "Gift card draining"
        assert 0 < ready["items"][0]["score"] <= 100
        assert ready["items"][0]["score"] > ready["items"][1]["score"]
        first_embedding = await stack.request_embedding(request["id"])
        assert first_embedding is not None

        # The text changes: the request is embedded again and its suggestions follow.
        patched = await stack.intake.patch(
            f"/api/v1/requests/{request['id']}",
            json={
                "title": "Customers locked out after their mobile carrier moved their number",
                "description": "Right after the carrier change someone gets a one-time code "
                "and replaces the bank details for withdrawals.",
            },
            headers={**partner, "If-Match": f'"{request["version"]}"'},
        )
        assert patched.status_code == 200, patched.text
        moved = await eventually(
            lambda: stack.suggestions(request["id"]),
            lambda s: s["status"] == "ready" and s["items"][0]["mo_id"] != gift["id"],
            within=60,
        )
        assert moved["items"][0]["mo_id"] == sim["id"], moved
        second_embedding = await stack.request_embedding(request["id"])
        assert second_embedding not in (None, first_embedding)

        # An MO's text changes: it is embedded again; intake learns the catalog moved, finds the
        # suggestions stale on read, and the recompute it asks for shows the new name.
        renamed = await stack.sop.patch(
            f"/api/v1/mos/{sim['id']}",
            json={"name": "SIM swap takeover"},
            headers=stack.as_(Role.ANALYST),
        )
        assert renamed.status_code == 200, renamed.text
        await eventually(lambda: stack.mo_embedded(sim["id"]), bool, within=60)
        renamed_first = await eventually(
            lambda: stack.suggestions(request["id"]),
            lambda s: s["status"] == "ready" and s["items"][0]["name"] == "SIM swap takeover",
            within=60,
        )
        assert renamed_first["items"][0]["mo_id"] == sim["id"]

        # Each entity's workflow ends once nothing is pending.
        handle = stack.temporal.get_workflow_handle(f"mo-embedding-{gift['id']}")
        assert await asyncio.wait_for(handle.result(), timeout=30) >= 1


async def test_without_semantic_matching_the_suggestions_are_lexical_and_say_so(
    make_settings: Callable[..., Settings], unique_team: str
) -> None:
    async with running_stack(make_settings, unique_team, semantic_matching="off") as stack:
        token = uuid.uuid4().hex[:8]
        mo = await stack.mo(
            name=f"Coupon abuse ring {token}",
            summary="Organised groups redeem first-order coupons repeatedly.",
            indicators={"signals": ["coupon redemption burst"]},
        )
        filed = await stack.intake.post(
            "/api/v1/requests",
            json={
                "request_type": "mo_investigation",
                "title": f"Coupon abuse ring {token} again",
                "description": "A coupon redemption burst from new accounts.",
            },
            headers=stack.as_(Role.PARTNER, team=unique_team),
        )
        assert filed.status_code == 201, filed.text
        ready = await eventually(
            lambda: stack.suggestions(filed.json()["id"]),
            lambda s: s["status"] == "ready" and bool(s["items"]),
            within=60,
        )
        assert (ready["method"], ready["model"]) == ("lexical", None)
        assert ready["items"][0]["mo_id"] == mo["id"]
        assert "coupon redemption burst" in [
            i["text"] for i in ready["items"][0]["matching_indicators"]
        ]
        # Nothing was embedded: neither the MO nor the request.
        assert not await stack.mo_embedded(mo["id"])
        assert await stack.request_embedding(filed.json()["id"]) is None
