"""Dataclasses that cross the service <-> workflow boundary for MO matching (issue 10).

The sop service signals `MoEmbeddingWorkflow` (one per MO) when an MO is recorded or changed; the
intake service signals `RequestMoMatchingWorkflow` (one per request) when a request is filed, its
title or description changes, or its stored suggestions are found stale. Every field added later
must have a default, so rows waiting in an outbox and recorded histories still decode.
"""

from __future__ import annotations

from dataclasses import dataclass, field

MO_EMBEDDING_WORKFLOW = "MoEmbeddingWorkflow"
MO_CHANGED_SIGNAL = "mo_changed"
REQUEST_MO_MATCHING_WORKFLOW = "RequestMoMatchingWorkflow"
REQUEST_TEXT_CHANGED_SIGNAL = "request_text_changed"


def mo_embedding_workflow_id(mo_id: int) -> str:
    """The workflow id of an MO's embedding (`mo-embedding-<id>`)."""
    return f"mo-embedding-{mo_id}"


def request_mo_matching_workflow_id(request_id: int) -> str:
    """The workflow id of a request's MO matching (`request-mo-matching-<id>`)."""
    return f"request-mo-matching-{request_id}"


@dataclass
class MoEmbeddingInput:
    """Start argument and signal of `MoEmbeddingWorkflow`: which MO changed."""

    mo_id: int
    trace_request_id: str | None = None


@dataclass
class RequestMoMatchingInput:
    """Start argument and signal of `RequestMoMatchingWorkflow`: which request to match again."""

    request_id: int
    reason: str = "text_changed"
    trace_request_id: str | None = None


@dataclass
class EmbedMoResult:
    """What `embed_mo` did: the method (`semantic` or `lexical`) and the sop catalog version."""

    mo_id: int
    method: str
    catalog_version: int
    embedded: bool = False


@dataclass
class PublishMoCatalogInput:
    """Input of `publish_mo_catalog`: the sop catalog version intake should compare with."""

    catalog_version: int
    trace_request_id: str | None = None


@dataclass
class RefreshMoSuggestionsResult:
    """What `refresh_request_mo_suggestions` stored for a request."""

    request_id: int
    method: str
    catalog_version: int
    mo_ids: list[int] = field(default_factory=list)
    superseded: bool = False
