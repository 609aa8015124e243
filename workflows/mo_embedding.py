"""Embeddings and MO suggestions, computed off the request path (issue 10).

Two small workflows, one per entity, each started (or signalled) by its service's outbox:

    MoEmbeddingWorkflow (`mo-embedding-<id>`), on an MO recorded or changed:
        embed_mo -> publish_mo_catalog
    RequestMoMatchingWorkflow (`request-mo-matching-<id>`), on a request filed, its title or
    description changed, or its suggestions found stale on read:
        refresh_request_mo_suggestions

Why separate workflows rather than a step in RequestLifecycleWorkflow: the lifecycle's histories
run for weeks and carry SLA clocks; a new activity there would need `workflow.patched` branches
forever, and a slow model load would sit in the SLA workflow's task queue path. A per-entity
workflow is short-lived (it ends once no signal is pending), so changing it later touches no
long-running history. Each activity reads the CURRENT state from the services and writes the
result guarded by a hash of the text it read (a stale write is a 409 and is dropped), so signals
arriving during a run simply coalesce into one more run, and a retried activity is harmless.

The model runs in the activity (in a thread: `embed` is blocking CPU work), loaded once per
worker process. Without the `ai` extra, or with RISKDESK_SEMANTIC_MATCHING=off, no embedding is
computed and sop ranks lexically; the stored suggestions say which method was used. A request
filed while the MO catalog is empty is not embedded yet (nothing to compare with): the first MO
moves the catalog version, which makes its suggestions stale and recomputes them on read.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from temporalio import activity, workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from services.common import embeddings
    from workflows.mo_embedding_contracts import (
        MO_CHANGED_SIGNAL,
        MO_EMBEDDING_WORKFLOW,
        REQUEST_MO_MATCHING_WORKFLOW,
        REQUEST_TEXT_CHANGED_SIGNAL,
        EmbedMoResult,
        MoEmbeddingInput,
        PublishMoCatalogInput,
        RefreshMoSuggestionsResult,
        RequestMoMatchingInput,
    )
    from workflows.service_api import ServiceApi

ACTIVITY_EMBED_MO = "embed_mo"
ACTIVITY_PUBLISH_MO_CATALOG = "publish_mo_catalog"
ACTIVITY_REFRESH_REQUEST_MO_SUGGESTIONS = "refresh_request_mo_suggestions"

SEMANTIC, LEXICAL = "semantic", "lexical"
CONFLICT = 409
# The first call of a worker process loads the model (about 10-15 s of imports on 2 cores);
# later ones take tens of milliseconds.
EMBED_TIMEOUT = timedelta(seconds=120)
# Bounded: a service down for long ends the run; the next change or stale read starts another.
RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=30),
    maximum_attempts=8,
)
# Runs of one workflow before it continues as new (keeps histories small under many changes).
MAX_RUNS = 100


class MoEmbeddingActivities:
    """The activities: calls to the intake and sop services via ServiceApi, and the model."""

    def __init__(self, api: ServiceApi) -> None:
        self.api = api

    def _semantic(self) -> bool:
        return embeddings.available(self.api.settings.semantic_matching)

    @activity.defn(name=ACTIVITY_EMBED_MO)
    async def embed_mo(self, input: MoEmbeddingInput) -> EmbedMoResult:
        """Embed an MO's text and each indicator, store them in sop; the catalog version after."""
        trace = input.trace_request_id
        if not self._semantic():
            catalog = (await self.api.call("sop", "GET", "/internal/mos/catalog")).json()
            return EmbedMoResult(input.mo_id, LEXICAL, int(catalog["version"]))
        text = (
            await self.api.call(
                "sop", "GET", f"/internal/mos/{input.mo_id}/matching-text", request_id=trace
            )
        ).json()
        if text["embedded"]:
            catalog = (await self.api.call("sop", "GET", "/internal/mos/catalog")).json()
            return EmbedMoResult(input.mo_id, SEMANTIC, int(catalog["version"]))
        indicators = [i["text"] for i in text["indicators"]]
        vectors = await asyncio.to_thread(embeddings.embed, [text["text"], *indicators])
        response = await self.api.call(
            "sop",
            "PUT",
            f"/internal/mos/{input.mo_id}/embedding",
            json={
                "text_hash": text["text_hash"],
                "model": embeddings.MODEL_NAME,
                "vector": embeddings.to_base64(vectors[0]),
                "indicator_vectors": [embeddings.to_base64(v) for v in vectors[1:]],
            },
            request_id=trace,
            ok_statuses=frozenset({CONFLICT}),
        )
        if response.status_code == CONFLICT:
            # The MO changed meanwhile: its newer signal re-runs this activity.
            catalog = (await self.api.call("sop", "GET", "/internal/mos/catalog")).json()
            return EmbedMoResult(input.mo_id, SEMANTIC, int(catalog["version"]))
        return EmbedMoResult(
            input.mo_id, SEMANTIC, int(response.json()["catalog_version"]), embedded=True
        )

    @activity.defn(name=ACTIVITY_PUBLISH_MO_CATALOG)
    async def publish_mo_catalog(self, input: PublishMoCatalogInput) -> None:
        """Tell intake the MO catalog moved: suggestions ranked before it become stale."""
        await self.api.call(
            "intake",
            "PUT",
            "/internal/mo-catalog",
            json={"version": input.catalog_version},
            request_id=input.trace_request_id,
        )

    @activity.defn(name=ACTIVITY_REFRESH_REQUEST_MO_SUGGESTIONS)
    async def refresh_request_mo_suggestions(
        self, input: RequestMoMatchingInput
    ) -> RefreshMoSuggestionsResult:
        """Embed the request (if needed), ask sop for the closest MOs, store them in intake."""
        trace = input.trace_request_id
        base = f"/internal/requests/{input.request_id}"
        current = (
            await self.api.call("intake", "GET", f"{base}/mo-matching", request_id=trace)
        ).json()
        catalog = (
            await self.api.call("sop", "GET", "/internal/mos/catalog", request_id=trace)
        ).json()
        body: dict[str, Any] = {
            "text": current["text"],
            "limit": self.api.settings.mo_suggestion_limit,
        }
        method = LEXICAL
        if self._semantic() and int(catalog["mos"]) > 0:
            method = SEMANTIC
            vector = current["embedding"]
            if vector is None or current["embedding_model"] != embeddings.MODEL_NAME:
                (computed,) = await asyncio.to_thread(embeddings.embed, [current["text"]])
                vector = embeddings.to_base64(computed)
                stored = await self.api.call(
                    "intake",
                    "PUT",
                    f"{base}/embedding",
                    json={
                        "text_hash": current["text_hash"],
                        "model": embeddings.MODEL_NAME,
                        "vector": vector,
                    },
                    request_id=trace,
                    ok_statuses=frozenset({CONFLICT}),
                )
                if stored.status_code == CONFLICT:
                    return RefreshMoSuggestionsResult(
                        input.request_id, method, int(catalog["version"]), superseded=True
                    )
            body.update(embedding=vector, model=embeddings.MODEL_NAME)
        matched = (
            await self.api.call("sop", "POST", "/internal/mos/match", json=body, request_id=trace)
        ).json()
        items = [
            {key: item[key] for key in ("mo_id", "name", "team", "status", "score")}
            | {"matching_indicators": item["matching_indicators"]}
            for item in matched["items"]
        ]
        response = await self.api.call(
            "intake",
            "PUT",
            f"{base}/mo-suggestions",
            json={
                "text_hash": current["text_hash"],
                "method": matched["method"],
                "model": matched["model"],
                "catalog_version": matched["catalog_version"],
                "items": items,
            },
            request_id=trace,
            ok_statuses=frozenset({CONFLICT}),
        )
        return RefreshMoSuggestionsResult(
            request_id=input.request_id,
            method=matched["method"],
            catalog_version=int(matched["catalog_version"]),
            mo_ids=[item["mo_id"] for item in items],
            superseded=response.status_code == CONFLICT,
        )

    def all(self) -> list[Any]:
        """Every activity of this class, for the worker."""
        return [self.embed_mo, self.publish_mo_catalog, self.refresh_request_mo_suggestions]


class _Coalescing:
    """Run once per burst of signals: a signal during a run asks for exactly one more run."""

    def __init__(self) -> None:
        self._pending = True
        self._runs = 0

    def _ask(self) -> None:
        self._pending = True

    async def _loop(self, step: Any, continue_with: Any) -> int:
        while self._pending:
            self._pending = False
            try:
                await step()
            except ActivityError as exc:
                # Out of retries (a service down for minutes): give up this run; the next change
                # or stale read starts a new one. Nothing half-written: every write is guarded.
                workflow.logger.warning("mo matching step failed: %s", exc)
            self._runs += 1
            if self._runs >= MAX_RUNS and self._pending:
                workflow.continue_as_new(continue_with)
        return self._runs


@workflow.defn(name=MO_EMBEDDING_WORKFLOW)
class MoEmbeddingWorkflow(_Coalescing):
    """Keeps one MO's embedding current and tells intake the catalog moved."""

    @workflow.signal(name=MO_CHANGED_SIGNAL)
    def changed(self, signal: MoEmbeddingInput) -> None:
        """The MO was recorded or changed (the outbox's signal)."""
        self._ask()

    @workflow.run
    async def run(self, input: MoEmbeddingInput) -> int:
        """Embed until no change is pending; returns the number of runs."""

        async def step() -> None:
            result = await workflow.execute_activity(
                ACTIVITY_EMBED_MO,
                input,
                result_type=EmbedMoResult,
                start_to_close_timeout=EMBED_TIMEOUT,
                retry_policy=RETRY,
            )
            await workflow.execute_activity(
                ACTIVITY_PUBLISH_MO_CATALOG,
                PublishMoCatalogInput(result.catalog_version, input.trace_request_id),
                start_to_close_timeout=timedelta(seconds=15),
                retry_policy=RETRY,
            )

        return await self._loop(step, input)


@workflow.defn(name=REQUEST_MO_MATCHING_WORKFLOW)
class RequestMoMatchingWorkflow(_Coalescing):
    """Keeps one request's embedding and MO suggestions current."""

    @workflow.signal(name=REQUEST_TEXT_CHANGED_SIGNAL)
    def text_changed(self, signal: RequestMoMatchingInput) -> None:
        """The request was filed, its text changed, or its suggestions were found stale."""
        self._ask()

    @workflow.run
    async def run(self, input: RequestMoMatchingInput) -> int:
        """Match until no change is pending; returns the number of runs."""

        async def step() -> None:
            await workflow.execute_activity(
                ACTIVITY_REFRESH_REQUEST_MO_SUGGESTIONS,
                input,
                result_type=RefreshMoSuggestionsResult,
                start_to_close_timeout=EMBED_TIMEOUT,
                retry_policy=RETRY,
            )

        return await self._loop(step, input)
