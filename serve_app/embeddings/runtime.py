"""Embedding model runtime: plain Python and torch, no Ray, no FastAPI."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from serve_app.devices import resolve_device
from serve_app.embeddings.bert import BertEncoder, load_tokenizer
from serve_app.embeddings.bert_config import default_model_dir
from serve_app.logs import get_logger

log = get_logger(__name__)


@dataclass(frozen=True)
class EmbeddingOutput:
    """Vectors (float32, L2-normalised, one row per input, input order) and token counts."""

    vectors: np.ndarray
    token_counts: list[int]


class EmbeddingRuntime:
    """Sentence embeddings with mean pooling + L2 normalisation (sentence-transformers recipe).

    Inputs are sorted by token length and cut into forward passes whose padded size stays under
    ``max_batch_tokens``, so one long text does not pad a whole batch.
    """

    def __init__(
        self,
        model_dir: Path | None = None,
        device: str = "auto",
        max_tokens: int = 256,
        max_batch_tokens: int = 16384,
    ) -> None:
        started = time.perf_counter()
        self.model_dir = Path(model_dir) if model_dir else default_model_dir()
        if not (self.model_dir / "config.json").is_file():
            raise FileNotFoundError(f"no model config.json under {self.model_dir}")
        self.device = resolve_device(device)
        self.max_tokens = max_tokens
        self.max_batch_tokens = max_batch_tokens
        # fp16 on CUDA agrees with fp32 to cosine >= 0.99999 for MiniLM; CPU stays fp32.
        self.dtype = torch.float16 if self.device == "cuda" else torch.float32
        self.model = BertEncoder(self.model_dir, self.device, self.dtype)
        if max_tokens > self.model.max_positions:
            raise ValueError(f"max_tokens {max_tokens} > the model's {self.model.max_positions}")
        self.tokenizer = load_tokenizer(self.model_dir, max_tokens)
        self.dimensions = self.model.hidden_size
        self.load_seconds = time.perf_counter() - started
        log.info(
            "embedding model loaded from %s on %s (%s) in %.2fs",
            self.model_dir,
            self.device,
            self.dtype,
            self.load_seconds,
        )

    def info(self, model_name: str) -> dict[str, Any]:
        """What ``/health`` reports for this model (the replica and the bridge add theirs)."""
        return {
            "status": "ready",
            "device": self.device,
            "weights": "pretrained",
            "model": model_name,
            "dimensions": self.dimensions,
            "load_seconds": round(self.load_seconds, 3),
        }

    def count_tokens(self, texts: list[str]) -> list[int]:
        """Token counts after truncation, special tokens included."""
        return [len(encoding.ids) for encoding in self.tokenizer.encode_batch(texts)]

    def embed(self, texts: list[str]) -> EmbeddingOutput:
        """Embed ``texts``; the result keeps their order."""
        if not texts:
            return EmbeddingOutput(np.zeros((0, self.dimensions), dtype=np.float32), [])
        ids = [encoding.ids for encoding in self.tokenizer.encode_batch(texts)]
        lengths = [len(x) for x in ids]
        order = sorted(range(len(texts)), key=lengths.__getitem__)
        out = np.empty((len(texts), self.dimensions), dtype=np.float32)
        for chunk in self._chunks(order, lengths):
            out[chunk] = self._forward([ids[i] for i in chunk])
        return EmbeddingOutput(out, lengths)

    def _chunks(self, order: list[int], lengths: list[int]) -> list[list[int]]:
        """Split length-sorted indices so that rows x longest row <= max_batch_tokens."""
        chunks: list[list[int]] = []
        current: list[int] = []
        for i in order:
            # Sorted ascending, so the newest element is the longest in the chunk.
            if current and (len(current) + 1) * lengths[i] > self.max_batch_tokens:
                chunks.append(current)
                current = []
            current.append(i)
        if current:
            chunks.append(current)
        return chunks

    @torch.inference_mode()
    def _forward(self, ids: list[list[int]]) -> np.ndarray:
        width = max(len(x) for x in ids)
        input_ids = torch.zeros((len(ids), width), dtype=torch.long)
        mask = torch.zeros((len(ids), width), dtype=torch.long)
        pad_id = self.model.pad_token_id
        if pad_id:
            input_ids.fill_(pad_id)
        for row, seq in enumerate(ids):
            input_ids[row, : len(seq)] = torch.tensor(seq, dtype=torch.long)
            mask[row, : len(seq)] = 1
        input_ids = input_ids.to(self.device, non_blocking=True)
        mask = mask.to(self.device, non_blocking=True)
        hidden = self.model(input_ids, mask)
        weights = mask.unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1e-9)
        pooled = pooled.float()
        pooled = torch.nn.functional.normalize(pooled, p=2, dim=1)
        return pooled.cpu().numpy()
