"""MO matching quality on the shipped labelled set (bench/data/mo_matching.json): precision@3 of
the semantic ranking (all-MiniLM-L6-v2 embeddings, the `ai` extra) and of the lexical fallback
(rapidfuzz), through the same ranking code the sop service runs (services/sop/mos/matching.py).

precision@k here is the share of requests whose labelled MO is among the top k suggestions: each
request has exactly one right MO, so this is what IR also calls success@k (strict precision,
right ones / k, would be capped at 1/k). The analysts' labels in production are measured the same
way by `GET /api/v1/requests/mo-suggestion-labels/precision` (`hit_rate_at_k`).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from services.common import embeddings
from services.sop.mos.matching import (
    Candidate,
    EmbeddedCandidate,
    Match,
    indicators_of,
    lexical_rank,
    mo_text,
    request_text,
    semantic_rank,
)

DATA = Path(__file__).parent / "data" / "mo_matching.json"
KS = (1, 3, 5)


def load() -> tuple[list[tuple[str, Candidate]], list[dict[str, Any]]]:
    """The MOs (as matching candidates, with their keys) and the labelled requests."""
    data = json.loads(DATA.read_text())
    mos = [
        (
            mo["key"],
            Candidate(
                mo_id=index,
                name=mo["name"],
                summary=mo["summary"],
                indicators=indicators_of(
                    signals=mo["signals"],
                    behaviours=mo["behaviours"],
                    entity_types=mo["entity_types"],
                ),
            ),
        )
        for index, mo in enumerate(data["mos"], start=1)
    ]
    return mos, data["requests"]


def _scores(rankings: list[list[Match]], labels: list[int]) -> dict[str, float]:
    return {
        f"precision_at_{k}": round(
            sum(
                label in [m.mo_id for m in ranked[:k]]
                for ranked, label in zip(rankings, labels, strict=True)
            )
            / len(labels),
            4,
        )
        for k in KS
    }


def run() -> dict[str, Any]:
    """Rank every labelled request both ways; precision@1/3/5 and timings."""
    mos, requests = load()
    ids = {key: candidate.mo_id for key, candidate in mos}
    candidates = [candidate for _, candidate in mos]
    labels = [ids[r["mo"]] for r in requests]
    texts = [request_text(r["title"], r["description"]) for r in requests]
    limit = max(KS)

    started = time.perf_counter()
    lexical = [lexical_rank(text=t, candidates=candidates, limit=limit) for t in texts]
    result: dict[str, Any] = {
        "labelled_requests": len(requests),
        "mos": len(mos),
        "definition": "precision@k = share of requests whose labelled MO is in the top k",
        "lexical": {
            **_scores(lexical, labels),
            "rank_ms_per_request": round((time.perf_counter() - started) * 1000 / len(texts), 3),
        },
    }
    if not embeddings.installed():
        result["semantic"] = None
        result["note"] = "the ai extra is not installed: semantic not measured"
        return result
    started = time.perf_counter()
    embeddings.warm_up()
    load_seconds = time.perf_counter() - started
    started = time.perf_counter()
    mo_vectors = embeddings.embed([mo_text(c) for c in candidates])
    indicator_vectors = [embeddings.embed([i.text for i in c.indicators]) for c in candidates]
    query_vectors = embeddings.embed(texts)
    embed_seconds = time.perf_counter() - started
    embedded = [
        EmbeddedCandidate(candidate=c, vector=v, indicator_vectors=iv)
        for c, v, iv in zip(candidates, mo_vectors, indicator_vectors, strict=True)
    ]
    started = time.perf_counter()
    semantic = [
        semantic_rank(query=q, text=t, candidates=embedded, limit=limit)
        for q, t in zip(query_vectors, texts, strict=True)
    ]
    rank_seconds = time.perf_counter() - started
    result["semantic"] = {
        **_scores(semantic, labels),
        "model": embeddings.MODEL_NAME,
        "model_load_seconds": round(load_seconds, 2),
        "embed_ms_per_text": round(embed_seconds * 1000 / (len(texts) + len(candidates)), 2),
        "rank_ms_per_request": round(rank_seconds * 1000 / len(texts), 3),
    }
    return result


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))
