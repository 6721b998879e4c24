"""EmbeddingRuntime against sentence-transformers' own output (no Ray): the packaged
all-MiniLM-L6-v2 and small random models of four architectures, on ONNX Runtime (the CPU
path) and on torch (the CUDA path, run here on the CPU in fp32)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from serve_app.embeddings.jobs import JOB_MAX_TOKENS, estimate_tokens, split_jobs
from serve_app.embeddings.model_files import default_model_dir, export_path
from serve_app.embeddings.runtime import EmbeddingRuntime
from serve_app.embeddings.torch_encoder import TorchEncoder
from tests.helpers.st_models import KINDS, make_model

SAME = 0.99999  # cosine to sentence-transformers' vectors

GROCERIES = [
    "oat milk",
    "Oatly barista edition 1 L",
    "free-range eggs, dozen",
    "sourdough bread",
    "Greek yoghurt 0% fat",
    "baby spinach 200 g",
    "chicken thighs, boneless, skinless",
    "extra virgin olive oil",
    "basmati rice 1 kg",
    "tinned chickpeas",
]
NON_ASCII = [
    "crème fraîche",
    "jalapeño peppers",
    "Müsli mit Früchten",
    "pâté de campagne",
    "豆腐 (tofu)",
    "味噌汁の素",
    "молоко 3,2%",
    "خبز عربي",
    "café au lait ☕",
    "smørbrød med laks 🐟",
]
RECIPES = [
    "Preheat the oven to 200C, toss the vegetables in oil and roast for 25 minutes.",
    "Simmer the lentils with cumin, garlic and tomatoes until thick; finish with lemon.",
    "Whisk eggs with milk, pour into a hot buttered pan and fold gently.",
    "Marinate tofu in soy sauce and ginger, then stir-fry with broccoli and peppers.",
    "Blend frozen berries, banana and oat milk into a smoothie.",
]


def _long_texts() -> list[str]:
    base = (
        "This weekly meal plan combines seasonal vegetables, whole grains and lean protein "
        "with a shopping list that reuses pantry staples to keep the budget under control. "
    )
    return [base * n for n in (5, 8, 12)] + ["word " * 600, "ü" * 3000]


TEXTS = (
    GROCERIES
    + NON_ASCII
    + RECIPES
    + _long_texts()
    + [f"{q} {item}" for q in ("cheap", "organic", "vegan", "bulk") for item in GROCERIES]
    + ["a", "?", "1 kg", "x" * 40]
)


def st_vectors(model_dir: Path, texts: list[str], device: str = "cpu") -> np.ndarray:
    """sentence-transformers' own vectors for ``texts``, L2-normalised."""
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(model_dir), device=device, local_files_only=True)
    vectors = model.encode(texts, convert_to_numpy=True)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def min_cosine(vectors: np.ndarray, reference: np.ndarray) -> float:
    return float((vectors * reference).sum(axis=1).min())


@pytest.fixture(scope="module")
def reference() -> np.ndarray:
    return st_vectors(default_model_dir(), TEXTS)


def test_enough_varied_texts():
    assert len(TEXTS) >= 50
    assert any(ord(c) > 127 for t in TEXTS for c in t)


def test_onnx_runtime_agrees_with_sentence_transformers(
    embedding_runtime: EmbeddingRuntime, reference
):
    assert embedding_runtime.encoder.engine == "onnxruntime"
    out = embedding_runtime.embed(TEXTS)
    assert out.vectors.shape == (len(TEXTS), 384)
    cosine = (out.vectors * reference).sum(axis=1)
    assert cosine.min() >= SAME, f"worst text: {TEXTS[int(cosine.argmin())][:60]!r}"


def test_torch_path_agrees_with_sentence_transformers(reference):
    """The CUDA path's code (sentence-transformers' modules on torch), here on the CPU."""
    torch_runtime = EmbeddingRuntime(engine="torch")
    assert torch_runtime.encoder.engine == "torch"
    assert min_cosine(torch_runtime.embed(TEXTS).vectors, reference) >= SAME


def test_onnx_runtime_on_cuda_is_refused_naming_the_way(monkeypatch):
    from serve_app.embeddings import runtime as runtime_module

    monkeypatch.setattr(runtime_module, "resolve_device", lambda device: "cuda")
    with pytest.raises(ValueError, match="ENGINE=torch"):
        EmbeddingRuntime(device="cuda", engine="onnxruntime")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (none here)")
def test_cuda_fp16_agrees_with_sentence_transformers(reference):
    """The CUDA path in fp16; the same code runs on the CPU in
    test_torch_path_agrees_with_sentence_transformers."""
    runtime = EmbeddingRuntime(device="cuda")
    assert runtime.encoder.engine == "torch"
    assert min_cosine(runtime.embed(TEXTS).vectors, reference) >= SAME


def test_vectors_are_normalised_and_truncated(embedding_runtime: EmbeddingRuntime):
    out = embedding_runtime.embed(TEXTS)
    np.testing.assert_allclose(np.linalg.norm(out.vectors, axis=1), 1.0, atol=1e-5)
    assert max(out.token_counts) == 256  # the long texts are cut at the model's 256 tokens
    assert min(out.token_counts) >= 3


def test_order_is_kept_whatever_the_lengths(embedding_runtime: EmbeddingRuntime):
    texts = [RECIPES[0] * 4, "milk", RECIPES[1], "eggs"]
    together = embedding_runtime.embed(texts).vectors
    for i, text in enumerate(texts):
        alone = embedding_runtime.embed([text]).vectors[0]
        assert float(alone @ together[i]) > 0.9999


def test_small_forward_budget_gives_the_same_vectors(embedding_runtime: EmbeddingRuntime):
    big = embedding_runtime.embed(TEXTS).vectors
    small = EmbeddingRuntime.__new__(EmbeddingRuntime)
    small.__dict__.update(embedding_runtime.__dict__)
    small.max_batch_tokens = 300  # forces many small forward passes
    assert len(small._chunks(list(range(len(TEXTS))), [256] * len(TEXTS))) == len(TEXTS)
    np.testing.assert_allclose(small.embed(TEXTS).vectors, big, atol=2e-5)


def test_threads_make_a_new_session_only_when_they_change(embedding_runtime):
    before = embedding_runtime.encoder
    expected = embedding_runtime.embed(GROCERIES).vectors
    embedding_runtime.set_threads(before.threads)
    assert embedding_runtime.encoder is before
    embedding_runtime.set_threads(1)
    try:
        assert embedding_runtime.encoder is not before
        assert embedding_runtime.encoder.threads == 1
        np.testing.assert_allclose(embedding_runtime.embed(GROCERIES).vectors, expected, atol=1e-5)
    finally:
        embedding_runtime.encoder = before


def test_empty_input(embedding_runtime: EmbeddingRuntime):
    out = embedding_runtime.embed([])
    assert out.vectors.shape == (0, 384)


def test_split_jobs_respects_the_token_cap():
    texts = ["x" * 2000] * 30 + ["short"] * 10
    jobs = split_jobs(texts, max_tokens=256)
    assert [t for job in jobs for t in job.texts] == texts
    assert all(job.est_tokens <= JOB_MAX_TOKENS for job in jobs)
    assert len(jobs) > 1
    assert estimate_tokens("x" * 10_000, 256) == 256


def test_split_by_jobs_keeps_rows_and_one_leader():
    from serve_app.embeddings.jobs import EmbedJob, EmbedResult, split_by_jobs

    jobs = [EmbedJob(["a", "b"], 6), EmbedJob(["c"], 3), EmbedJob(["d", "e", "f"], 9)]
    vectors = np.arange(6 * 4, dtype=np.float32).reshape(6, 4)
    whole = EmbedResult(vectors, [1, 2, 3, 4, 5, 6], 3, 6, True, 0.5)
    parts = split_by_jobs(whole, jobs)
    assert [p.token_counts for p in parts] == [[1, 2], [3], [4, 5, 6]]
    np.testing.assert_array_equal(np.concatenate([p.vectors for p in parts]), vectors)
    assert [p.batch_leader for p in parts] == [True, False, False]
    assert all(p.batch_texts == 6 and p.batch_seconds == 0.5 for p in parts)
    follower = EmbedResult(vectors, [1, 2, 3, 4, 5, 6], 3, 6, False, 0.5)
    assert not any(p.batch_leader for p in split_by_jobs(follower, jobs))


@pytest.fixture(scope="module")
def random_models(tmp_path_factory) -> dict[str, tuple[Path, Path]]:
    """Each kind of random model as a sentence-transformers directory, exported (in this
    process: torch is loaded here already) into an ONNX folder of its own."""
    from serve_app.embeddings.onnx_export import export

    root = tmp_path_factory.mktemp("models")
    onnx_dir = root / "onnx"
    made = {}
    for kind in KINDS:
        model_dir = make_model(kind, root)
        export(model_dir, export_path(model_dir, onnx_dir))
        made[kind] = (model_dir, onnx_dir)
    return made


@pytest.mark.parametrize("kind", list(KINDS))
def test_any_sentence_transformers_model_is_served_as_its_own_library_does(
    random_models, kind: str
):
    """BERT with CLS pooling, MPNet, XLM-RoBERTa with last-token pooling, DistilBERT with max
    pooling and a Dense head of 16 dimensions: pooling, dimension and token limit come from
    the directory; both engines give sentence-transformers' vectors."""
    model_dir, onnx_dir = random_models[kind]
    texts = [*GROCERIES, RECIPES[0] * 3, "ü" * 300]
    reference = st_vectors(model_dir, texts)
    runtime = EmbeddingRuntime(model_dir, onnx_dir, max_batch_tokens=256)
    assert runtime.dimensions == reference.shape[1] == (16 if "dense" in kind else 32)
    assert runtime.max_tokens == 64  # the directory's sentence_bert_config.json
    assert runtime.export.record["pooling"] == KINDS[kind][2]
    assert min_cosine(runtime.embed(texts).vectors, reference) >= SAME
    runtime.encoder = TorchEncoder(model_dir, "cpu")
    assert min_cosine(runtime.embed(texts).vectors, reference) >= SAME


def test_the_export_is_made_once_and_checked_on_load(random_models, tmp_path):
    """A second start finds the export; a damaged graph is refused naming the file; a model
    directory changed since is exported again (here: by the subprocess that serve-app runs)."""
    from serve_app.embeddings.model_files import ModelNotServable, ensure_export, find_export

    model_dir, onnx_dir = random_models["bert-cls"]
    first = ensure_export(model_dir, onnx_dir, progress=pytest.fail)  # no export: none made
    graph = first.onnx_path
    saved = graph.read_bytes()
    graph.write_bytes(saved[:-16] + bytes(16))
    try:
        with pytest.raises(ModelNotServable, match=r"model\.onnx is not the file exported"):
            EmbeddingRuntime(model_dir, onnx_dir)
    finally:
        graph.write_bytes(saved)
    config = model_dir / "config_sentence_transformers.json"
    config.write_text(config.read_text() + " ")
    assert "changed since it was exported" in find_export(model_dir, onnx_dir)
    said: list[str] = []
    again = ensure_export(model_dir, onnx_dir, progress=said.append)
    assert "exporting" in said[0] and "saved in" in said[-1], said
    assert again.record["source"] != first.record["source"]


@pytest.mark.parametrize(
    "make, why",
    [
        (lambda d: None, r"holds no model \(no config.json\)"),
        (lambda d: (d / "config.json").write_text("{}"), "cannot serve .*: "),
    ],
    ids=["empty folder", "no weights"],
)
def test_a_directory_it_cannot_serve_is_refused_naming_why(tmp_path, make, why):
    from serve_app.embeddings.model_files import ModelNotServable

    model_dir = tmp_path / "model-dir"
    model_dir.mkdir()
    make(model_dir)
    with pytest.raises(ModelNotServable, match=why):
        EmbeddingRuntime(model_dir, tmp_path / "onnx")


def test_without_torch_a_missing_export_names_the_way_out(tmp_path, monkeypatch):
    from serve_app.embeddings import model_files

    monkeypatch.setattr(model_files, "why_no_exporter", lambda: "torch not installed")
    with pytest.raises(model_files.ModelNotServable, match="none can be made here: torch"):
        EmbeddingRuntime(default_model_dir(), tmp_path / "onnx")


def test_max_tokens_beyond_the_models_is_refused():
    with pytest.raises(ValueError, match=r"max_tokens 1024 is more than .* reads \(256\)"):
        EmbeddingRuntime(max_tokens=1024)


def test_the_cpu_path_loads_no_torch(embedding_runtime):
    """The serving process on a CPU imports onnxruntime, tokenizers and numpy, never torch
    (nor maps its library), even where torch is installed."""
    code = (
        "import sys\n"
        "from serve_app.embeddings.runtime import EmbeddingRuntime\n"
        "runtime = EmbeddingRuntime()\n"
        "assert runtime.embed(['oat milk']).vectors.shape == (1, 384)\n"
        "maps = open('/proc/self/maps').read()\n"
        "print('torch' in sys.modules, 'libtorch' in maps, runtime.encoder.engine)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["False", "False", "onnxruntime"]
