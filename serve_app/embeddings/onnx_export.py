"""A sentence-transformers model directory traced whole into one ONNX graph, in a process of its
own: ``python -m serve_app.embeddings.onnx_export MODEL_DIR OUT_DIR``. TorchScript exporter, not
dynamo: a faster graph and export (docs/models.md)."""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import torch
from sentence_transformers import SentenceTransformer

from serve_app.embeddings.model_files import (
    EXPORT_FILE,
    EXPORT_FORMAT,
    ONNX_FILE,
    TOKENIZER_FILE,
    file_record,
    fingerprint,
)

OPSET = 17
INPUTS = ("input_ids", "attention_mask", "token_type_ids")  # what runtime.py gives a model
CHECK_COSINE = 0.99999  # the export's vectors against sentence-transformers' own
# torch's own checks of what it exports (a non-fatal tracer note per branch it takes)
QUIET = ("ignore", (DeprecationWarning, UserWarning, torch.jit.TracerWarning))


class SentenceEmbedding(torch.nn.Module):
    """The model's modules as one function of its tensor inputs, for the tracer."""

    def __init__(self, model: SentenceTransformer, input_names: list[str]):
        super().__init__()
        self.model = model
        self.input_names = input_names

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        features = dict(zip(self.input_names, inputs, strict=True))
        return self.model(features)["sentence_embedding"]


def load(model_dir: Path) -> SentenceTransformer:
    """The directory as sentence-transformers loads it, on the CPU, in fp32; a directory it
    cannot serve (not text, no weights) raises ValueError naming why."""
    if not (model_dir / "config.json").is_file():
        raise ValueError(f"{model_dir} has no config.json: not a transformers model directory")
    try:
        model = SentenceTransformer(str(model_dir), device="cpu", local_files_only=True)
    except Exception as exc:
        raise ValueError(f"sentence-transformers cannot load {model_dir}: {exc}") from exc
    modalities = getattr(model[0], "modalities", ["text"])
    if "text" not in modalities:
        raise ValueError(f"{model_dir} embeds {modalities}, not text")
    return model.eval().float()


def export(model_dir: Path, out_dir: Path) -> dict[str, Any]:
    """Export ``model_dir`` into ``out_dir`` (made here; written whole or not at all) and
    return what ``export.json`` records."""
    started = time.perf_counter()
    model = load(model_dir)
    tokenizer = model.tokenizer
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        raise ValueError(f"{model_dir}: its tokenizer has no fast (tokenizers) version")
    sample = model.preprocess(["an example text to trace", "another"])
    input_names = [name for name, value in sample.items() if isinstance(value, torch.Tensor)]
    if not {"input_ids", "attention_mask"} <= set(input_names) <= set(INPUTS):
        raise ValueError(f"{model_dir}: its inputs {input_names} are not {' and '.join(INPUTS)}")
    with torch.inference_mode():
        reference = model(dict(sample))["sentence_embedding"]
    tmp = out_dir.with_name(f".{out_dir.name}.{os.getpid()}")
    tmp.mkdir(parents=True, exist_ok=True)
    try:
        dynamic = {name: {0: "batch", 1: "tokens"} for name in input_names}
        with warnings.catch_warnings():
            warnings.simplefilter(*QUIET)
            torch.onnx.export(
                SentenceEmbedding(model, input_names).eval(),
                tuple(sample[name] for name in input_names),
                str(tmp / ONNX_FILE),
                input_names=input_names,
                output_names=["sentence_embedding"],
                dynamic_axes={**dynamic, "sentence_embedding": {0: "batch"}},
                opset_version=OPSET,
                dynamo=False,
            )
        backend.no_padding()
        backend.no_truncation()
        backend.save(str(tmp / TOKENIZER_FILE))
        transformer = model[0]
        max_tokens = model.max_seq_length or min(
            tokenizer.model_max_length,
            getattr(transformer.auto_model.config, "max_position_embeddings", 512),
        )
        record = {
            "format": EXPORT_FORMAT,
            "model_dir": str(model_dir),
            "source": fingerprint(model_dir, hash_all=True),
            "onnx": file_record(tmp / ONNX_FILE),
            "dimensions": int(reference.shape[-1]),
            "max_tokens": int(max_tokens),
            "pad_token_id": int(tokenizer.pad_token_id or 0),
            "input_names": input_names,
            "lowercase": bool(getattr(transformer, "do_lower_case", False)),
            "modules": [type(module).__name__ for module in model],
            "pooling": _pooling(model),
            "architecture": type(transformer.auto_model).__name__,
            "exporter": f"torch {torch.__version__} (TorchScript, opset {OPSET})",
            "export_seconds": round(time.perf_counter() - started, 2),
        }
        # the graph's own inputs: the tracer drops one the model ignores (MPNet: token types)
        record["input_names"] = _check(tmp / ONNX_FILE, model)
        (tmp / EXPORT_FILE).write_text(json.dumps(record, indent=2) + "\n")
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)  # nothing half-written is left
        raise
    if out_dir.exists():  # a stale export of the same directory: replaced whole
        shutil.rmtree(out_dir)
    tmp.rename(out_dir)
    return record


def _check(onnx_path: Path, model: SentenceTransformer) -> list[str]:
    """The graph's input names, once it gives sentence-transformers' vectors on other shapes
    than the traced ones (a tracer that fixed a shape or a branch would not)."""
    import numpy as np
    import onnxruntime

    texts = ["a check", "of the exported graph on three texts", "of other lengths " * 9]
    features = model.preprocess(texts)
    with torch.inference_mode():
        expected = model(dict(features))["sentence_embedding"].numpy()
    session = onnxruntime.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    input_names = [graph_input.name for graph_input in session.get_inputs()]
    (got,) = session.run(None, {name: features[name].numpy() for name in input_names})
    cosine = (got * expected).sum(1) / (
        np.linalg.norm(got, axis=1) * np.linalg.norm(expected, axis=1)
    )
    if cosine.min() < CHECK_COSINE:
        raise ValueError(f"the ONNX graph gives other vectors (cosine {cosine.min():.6f})")
    return input_names


def _pooling(model: SentenceTransformer) -> str:
    """The pooling mode(s) of the model's Pooling module, as its config names them."""
    for module in model:
        config = getattr(module, "get_config_dict", dict)()
        if "pooling_mode" in config:
            return str(config["pooling_mode"])
    return "none"


def main() -> None:
    if len(sys.argv) != 3:
        raise SystemExit("usage: python -m serve_app.embeddings.onnx_export MODEL_DIR OUT_DIR")
    model_dir, out_dir = Path(sys.argv[1]), Path(sys.argv[2])
    try:
        record = export(model_dir, out_dir)
    except ValueError as exc:
        print(f"cannot export: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    print(
        f"exported {record['architecture']} ({' -> '.join(record['modules'])}, pooling "
        f"{record['pooling']}, {record['dimensions']} dimensions, {record['max_tokens']} "
        f"tokens) in {record['export_seconds']} s",
        flush=True,
    )


if __name__ == "__main__":
    main()
