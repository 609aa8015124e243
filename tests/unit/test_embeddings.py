"""The embedding module: vector encoding, cosine, text hashes, the fallback when the `ai` extra is
missing or matching is off, and the real local model (loaded once per session)."""

from __future__ import annotations

import importlib.util
import math
import re

import pytest

from services.common import embeddings


def test_vectors_round_trip_through_bytes_and_base64() -> None:
    vector = [0.5, -0.25, 1.0, 0.0] * (embeddings.DIMENSIONS // 4)
    assert embeddings.from_bytes(embeddings.to_bytes(vector)) == vector
    assert embeddings.from_base64(embeddings.to_base64(vector)) == vector
    assert len(embeddings.to_bytes(vector)) == embeddings.VECTOR_BYTES


@pytest.mark.parametrize(
    "text",
    [
        "not base64 at all!",
        embeddings.to_base64([0.1] * 10),
        embeddings.to_base64([math.nan] * embeddings.DIMENSIONS),
        embeddings.to_base64([math.inf] * embeddings.DIMENSIONS),
        "é" * 8,
    ],
)
def test_a_bad_vector_is_refused(text: str) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - each case has its own message
        embeddings.from_base64(text)


def test_a_partial_float_is_refused() -> None:
    with pytest.raises(ValueError, match="float32"):
        embeddings.from_bytes(b"\x00\x00\x00")


def test_cosine_and_dot() -> None:
    assert embeddings.cosine([1.0, 0.0], [0.0, 1.0]) == 0.0
    assert embeddings.cosine([1.0, 1.0], [2.0, 2.0]) == pytest.approx(1.0)
    assert embeddings.cosine([1.0, 0.0], [-3.0, 0.0]) == pytest.approx(-1.0)
    assert embeddings.cosine([0.0, 0.0], [1.0, 0.0]) == 0.0
    assert embeddings.dot([0.6, 0.8], [0.6, 0.8]) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="length"):
        embeddings.cosine([1.0], [1.0, 2.0])


def test_text_hash_changes_with_the_text_only() -> None:
    assert embeddings.text_hash("a") == embeddings.text_hash("a")
    assert embeddings.text_hash("a") != embeddings.text_hash("b")
    assert re.fullmatch(r"[0-9a-f]{64}", embeddings.text_hash(""))


def test_off_means_unavailable_whatever_is_installed() -> None:
    assert embeddings.available("off") is False
    assert embeddings.available("auto") is embeddings.installed()


def test_without_the_extra_nothing_is_available_and_embed_says_why(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # What a machine without the extra looks like: the packages cannot be found.
    real_find_spec = importlib.util.find_spec
    hidden = {"sentence_transformers", embeddings.MODEL_PACKAGE}
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name in hidden else real_find_spec(name, *a),
    )
    monkeypatch.setattr(embeddings, "_model", None)
    assert embeddings.installed() is False
    assert embeddings.available("auto") is False
    with pytest.raises(embeddings.EmbeddingUnavailable, match="ai extra"):
        embeddings.embed(["gift cards"])
    assert embeddings.embed([]) == []


def test_the_local_model_gives_normalised_vectors_that_follow_meaning(
    embedding_model: None,
) -> None:
    drained, vouchers, sim = embeddings.embed(
        [
            "Gift cards bought with stolen payment cards are redeemed within minutes.",
            "Prepaid voucher balances emptied right after checkout.",
            "Phone number ported to another SIM to reset the password.",
        ]
    )
    assert len(drained) == embeddings.DIMENSIONS
    assert math.sqrt(sum(x * x for x in drained)) == pytest.approx(1.0, abs=1e-4)
    assert embeddings.dot(drained, vouchers) > embeddings.dot(drained, sim) + 0.1
