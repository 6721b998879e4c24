"""The same sentence embeddings as :class:`~serve_app.embeddings.runtime.EmbeddingRuntime`,
computed with numpy: BERT's encoder (``bert.py``'s, step for step) over the same safetensors
weights and tokenizer, on the CPU, in float32.

Why: importing torch is most of a replica's start (3 s of a plain process's 4 s on this
machine, and about 480 MB), while numpy is imported already in every Ray worker and this
loads in a tenth of a second. A standby worker woken by a request (serve_app/prestart.py)
answers the calls that woke it with this while torch and the replica's model load
(serve_app/standby_answer.py); every later call goes to the replica. The vectors agree with
the torch runtime's to about 1e-6 (``tests/unit/embeddings/test_numpy_bert.py``).
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np

from serve_app.embeddings.bert_config import load_tokenizer, read_config


def gelu(x: np.ndarray) -> np.ndarray:
    """BERT's exact GELU, ``x * Φ(x)``, with erf from Abramowitz and Stegun 7.1.26
    (absolute error at most 1.5e-7: float32's own precision here)."""
    z = np.abs(x) * np.float32(1 / math.sqrt(2))
    t = 1 / (1 + np.float32(0.3275911) * z)
    poly = t * (
        np.float32(0.254829592)
        + t
        * (
            np.float32(-0.284496736)
            + t * (np.float32(1.421413741) + t * (np.float32(-1.453152027) + t * 1.061405429))
        )
    )
    erf = np.sign(x) * (1 - poly * np.exp(-z * z))
    return (x * 0.5 * (1 + erf)).astype(np.float32, copy=False)


class NumpyEmbedder:
    """``embed(texts)`` as the torch runtime's (mean pooling, L2 normalisation, inputs
    sorted by length and cut into passes of at most ``max_batch_tokens`` padded tokens)."""

    def __init__(self, model_dir: Path, max_tokens: int = 256, max_batch_tokens: int = 16384):
        from safetensors.numpy import load_file

        started = time.perf_counter()
        self.config = read_config(model_dir)
        self.max_batch_tokens = max_batch_tokens
        weights = load_file(str(model_dir / "model.safetensors"))
        floats = {name for name, t in weights.items() if t.dtype.kind == "f"}
        self.w = {
            name.removeprefix("bert."): t.astype(np.float32, copy=False) if name in floats else t
            for name, t in weights.items()
        }
        self.tokenizer = load_tokenizer(model_dir, max_tokens)
        self.load_seconds = time.perf_counter() - started

    def _linear(self, x: np.ndarray, name: str) -> np.ndarray:
        return x @ self.w[f"{name}.weight"].T + self.w[f"{name}.bias"]

    def _norm(self, x: np.ndarray, name: str) -> np.ndarray:
        mean = x.mean(-1, keepdims=True)
        var = ((x - mean) ** 2).mean(-1, keepdims=True)
        return (x - mean) / np.sqrt(var + self.config.eps) * self.w[f"{name}.weight"] + self.w[
            f"{name}.bias"
        ]

    def encode(self, input_ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """The last hidden state for a padded batch (``mask`` 1 for tokens, 0 for padding)."""
        batch, width = input_ids.shape
        x = (
            self.w["embeddings.word_embeddings.weight"][input_ids]
            + self.w["embeddings.position_embeddings.weight"][:width][None]
            + self.w["embeddings.token_type_embeddings.weight"][0]
        )
        x = self._norm(x, "embeddings.LayerNorm")
        bias = np.where(mask == 0, np.finfo(np.float32).min, 0).astype(np.float32)
        bias = bias[:, None, None, :]
        size = self.config.hidden_size // self.config.heads
        scale = np.float32(1 / math.sqrt(size))

        def heads(t: np.ndarray) -> np.ndarray:
            return t.reshape(batch, width, self.config.heads, size).transpose(0, 2, 1, 3)

        for i in range(self.config.layers):
            layer = f"encoder.layer.{i}"
            q = heads(self._linear(x, f"{layer}.attention.self.query"))
            k = heads(self._linear(x, f"{layer}.attention.self.key"))
            v = heads(self._linear(x, f"{layer}.attention.self.value"))
            scores = q @ k.transpose(0, 1, 3, 2) * scale + bias
            scores = np.exp(scores - scores.max(-1, keepdims=True))
            a = (scores / scores.sum(-1, keepdims=True)) @ v
            a = a.transpose(0, 2, 1, 3).reshape(batch, width, self.config.hidden_size)
            a = self._linear(a, f"{layer}.attention.output.dense")
            x = self._norm(a + x, f"{layer}.attention.output.LayerNorm")
            h = gelu(self._linear(x, f"{layer}.intermediate.dense"))
            h = self._linear(h, f"{layer}.output.dense")
            x = self._norm(h + x, f"{layer}.output.LayerNorm")
        return x

    def embed(self, texts: list[str]) -> tuple[np.ndarray, list[int]]:
        """The L2-normalised mean-pooled vectors of ``texts`` (float32, input order) and
        their token counts."""
        ids = [encoding.ids for encoding in self.tokenizer.encode_batch(texts)]
        lengths = [len(x) for x in ids]
        out = np.empty((len(texts), self.config.hidden_size), dtype=np.float32)
        order = sorted(range(len(texts)), key=lengths.__getitem__)
        chunk: list[int] = []
        for i in [*order, None]:
            if chunk and (i is None or (len(chunk) + 1) * lengths[i] > self.max_batch_tokens):
                out[chunk] = self._pooled([ids[j] for j in chunk])
                chunk = []
            if i is not None:
                chunk.append(i)
        return out, lengths

    def _pooled(self, ids: list[list[int]]) -> np.ndarray:
        width = max(len(x) for x in ids)
        input_ids = np.full((len(ids), width), self.config.pad_token_id, dtype=np.int64)
        mask = np.zeros((len(ids), width), dtype=np.float32)
        for row, seq in enumerate(ids):
            input_ids[row, : len(seq)] = seq
            mask[row, : len(seq)] = 1
        hidden = self.encode(input_ids, mask)
        pooled = (hidden * mask[..., None]).sum(1) / np.maximum(mask.sum(1, keepdims=True), 1e-9)
        norms = np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)
        return (pooled / norms).astype(np.float32)
