"""Embedding model runtime: plain Python, no Ray, no FastAPI (engines: docs/models.md).

Texts are sorted by length and cut into forward passes of at most ``max_batch_tokens`` padded
tokens, so one long text does not pad a whole batch.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
from tokenizers import Encoding, Tokenizer

from serve_app.devices import cpu_threads, resolve_device
from serve_app.embeddings.jobs import EmbedJob, EmbedResult, split_by_jobs
from serve_app.embeddings.model_files import ModelExport, default_model_dir, ensure_export
from serve_app.logs import get_logger
from serve_app.settings import get_settings

if TYPE_CHECKING:
    from serve_app.settings import Settings

log = get_logger(__name__)


@dataclass(frozen=True)
class EmbeddingOutput:
    """Vectors (float32, L2-normalised, one row per input, input order) and token counts."""

    vectors: np.ndarray
    token_counts: list[int]


class Encoder(Protocol):
    """Padded token arrays by input name -> one sentence vector per row."""

    engine: str

    def __call__(self, inputs: dict[str, np.ndarray]) -> np.ndarray: ...


class OnnxEncoder:
    """The export's graph in an ONNX Runtime session; thread-safe, ``threads`` threads a call."""

    engine = "onnxruntime"

    def __init__(self, export: ModelExport, threads: int):
        import onnxruntime

        export.verify()
        options = onnxruntime.SessionOptions()
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        # idle threads sleep, not spin: the ingress, HAProxy and other replicas share the cores
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.threads = threads
        self.session = onnxruntime.InferenceSession(
            str(export.onnx_path), options, providers=["CPUExecutionProvider"]
        )

    def __call__(self, inputs: dict[str, np.ndarray]) -> np.ndarray:
        return self.session.run(None, inputs)[0]


class EmbeddingRuntime:
    """Sentence embeddings of one model, in input order, with token counts."""

    def __init__(
        self,
        model_dir: Path | None = None,
        onnx_dir: Path | None = None,
        device: str = "auto",
        max_tokens: int | None = None,
        max_batch_tokens: int = 16384,
        engine: str = "auto",
    ) -> None:
        started = time.perf_counter()
        model_dir = Path(model_dir) if model_dir else default_model_dir()
        onnx_dir = onnx_dir or get_settings().embeddings_onnx_path()
        self.export = ensure_export(model_dir, onnx_dir, log.info)
        self.model_dir = model_dir
        self.max_tokens = max_tokens or self.export.max_tokens
        if self.max_tokens > self.export.max_tokens:
            raise ValueError(
                f"max_tokens {self.max_tokens} is more than {model_dir.name} reads "
                f"({self.export.max_tokens})"
            )
        self.max_batch_tokens = max_batch_tokens
        self.dimensions = self.export.dimensions
        self.device = resolve_device(device)
        self.encoder: Encoder = self._encoder(engine)
        self.tokenizer = Tokenizer.from_file(str(self.export.tokenizer_path))
        self.tokenizer.no_padding()  # each forward pass pads to its longest text
        self.tokenizer.enable_truncation(max_length=self.max_tokens)
        self._lowercase = bool(self.export.record["lowercase"])
        self._pad_id = int(self.export.record["pad_token_id"])
        self._inputs = list(self.export.record["input_names"])
        self.load_seconds = time.perf_counter() - started
        log.info(
            "embedding model %s (%s) on %s with %s in %.2fs",
            model_dir,
            self.export.describe(),
            self.device,
            self.encoder.engine,
            self.load_seconds,
        )

    @classmethod
    def from_settings(cls, settings: Settings) -> EmbeddingRuntime:
        """The model the settings name (SERVE_APP_EMBEDDINGS_*)."""
        return cls(
            model_dir=settings.embeddings_model_dir,
            onnx_dir=settings.embeddings_onnx_path(),
            device=settings.embeddings_device,
            max_tokens=settings.embeddings_max_tokens,
            engine=settings.embeddings_engine,
        )

    def _encoder(self, engine: str) -> Encoder:
        if engine == "auto":
            engine = "onnxruntime" if self.device == "cpu" else "torch"
        if engine == "onnxruntime":
            if self.device != "cpu":
                raise ValueError(
                    f"ONNX Runtime runs the embeddings on the CPU here, not on {self.device}: "
                    "SERVE_APP_EMBEDDINGS_ENGINE=torch (or auto) serves them on CUDA"
                )
            return OnnxEncoder(self.export, cpu_threads(0))  # every core, until set_threads
        from serve_app.embeddings.torch_encoder import TorchEncoder

        return TorchEncoder(self.model_dir, self.device)

    def set_threads(self, threads: int) -> None:
        """CPU threads per forward pass (0: every core); ONNX Runtime needs a new session."""
        if isinstance(self.encoder, OnnxEncoder) and self.encoder.threads != cpu_threads(threads):
            self.encoder = OnnxEncoder(self.export, cpu_threads(threads))

    def info(self, model_name: str) -> dict[str, Any]:
        """What ``/health`` reports for this model (the replica and the bridge add theirs)."""
        return {
            "status": "ready",
            "device": self.device,
            "engine": self.encoder.engine,
            "weights": "pretrained",
            "model": model_name,
            "dimensions": self.dimensions,
            "max_tokens": self.max_tokens,
            "pooling": self.export.record["pooling"],
            "load_seconds": round(self.load_seconds, 3),
        }

    def embed(self, texts: list[str]) -> EmbeddingOutput:
        """Embed ``texts``; the result keeps their order."""
        if self._lowercase:
            texts = [text.lower() for text in texts]
        encodings = self.tokenizer.encode_batch(texts)
        lengths = [len(encoding.ids) for encoding in encodings]
        order = sorted(range(len(texts)), key=lengths.__getitem__)
        out = np.empty((len(texts), self.dimensions), dtype=np.float32)
        for chunk in self._chunks(order, lengths):
            out[chunk] = self._forward([encodings[i] for i in chunk])
        out /= np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)
        return EmbeddingOutput(out, lengths)

    def embed_jobs(self, jobs: list[EmbedJob]) -> list[EmbedResult]:
        """One :meth:`embed` for the texts of every job; a result per job, the first the leader."""
        texts = [text for job in jobs for text in job.texts]
        started = time.perf_counter()
        output = self.embed(texts)
        whole = EmbedResult(
            vectors=output.vectors,
            token_counts=output.token_counts,
            batch_jobs=len(jobs),
            batch_texts=len(texts),
            batch_leader=True,
            batch_seconds=time.perf_counter() - started,
        )
        return split_by_jobs(whole, jobs)

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

    def _forward(self, encodings: list[Encoding]) -> np.ndarray:
        width = max(len(encoding.ids) for encoding in encodings)
        arrays = {
            "input_ids": np.full((len(encodings), width), self._pad_id, dtype=np.int64),
            "attention_mask": np.zeros((len(encodings), width), dtype=np.int64),
            "token_type_ids": np.zeros((len(encodings), width), dtype=np.int64),
        }
        for row, encoding in enumerate(encodings):
            n = len(encoding.ids)
            arrays["input_ids"][row, :n] = encoding.ids
            arrays["attention_mask"][row, :n] = 1
            arrays["token_type_ids"][row, :n] = encoding.type_ids
        return self.encoder({name: arrays[name] for name in self._inputs})
