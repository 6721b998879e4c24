"""EmbeddingRuntime against sentence-transformers on the same weights (no Ray)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from serve_app.embeddings.jobs import JOB_MAX_TOKENS, estimate_tokens, split_jobs
from serve_app.embeddings.runtime import EmbeddingRuntime, default_model_dir

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


@pytest.fixture(scope="module")
def reference():
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(default_model_dir()), device="cpu", local_files_only=True)
    return model.encode(TEXTS, normalize_embeddings=False, convert_to_numpy=True)


def test_enough_varied_texts():
    assert len(TEXTS) >= 50
    assert any(ord(c) > 127 for t in TEXTS for c in t)


def test_agrees_with_sentence_transformers(embedding_runtime: EmbeddingRuntime, reference):
    out = embedding_runtime.embed(TEXTS)
    assert out.vectors.shape == (len(TEXTS), 384)
    ref = reference / np.linalg.norm(reference, axis=1, keepdims=True)
    cosine = (out.vectors * ref).sum(axis=1)
    assert cosine.min() >= 0.999, f"worst text: {TEXTS[int(cosine.argmin())][:60]!r}"


def test_vectors_are_normalised_and_truncated(embedding_runtime: EmbeddingRuntime):
    out = embedding_runtime.embed(TEXTS)
    np.testing.assert_allclose(np.linalg.norm(out.vectors, axis=1), 1.0, atol=1e-5)
    assert max(out.token_counts) == 256  # the long texts are cut at 256 tokens
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


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (none here)")
def test_cuda_fp16_agrees_with_sentence_transformers(reference):
    """The CUDA path (fp16); the same code runs on CPU in test_agrees_with_sentence_transformers."""
    runtime = EmbeddingRuntime(device="cuda")
    assert runtime.dtype == torch.float16
    out = runtime.embed(TEXTS)
    ref = reference / np.linalg.norm(reference, axis=1, keepdims=True)
    assert ((out.vectors * ref).sum(axis=1)).min() >= 0.999


def test_other_architectures_are_refused(tmp_path):
    import json
    import shutil

    from serve_app.embeddings.bert import BertEncoder

    for name in ("config.json", "model.safetensors", "tokenizer.json"):
        shutil.copy(default_model_dir() / name, tmp_path / name)
    config = json.loads((tmp_path / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({**config, "model_type": "roberta"}))
    with pytest.raises(ValueError, match="model_type 'roberta' is not 'bert'"):
        BertEncoder(tmp_path, "cpu", torch.float32)


def test_max_tokens_beyond_the_models_positions_is_refused():
    with pytest.raises(ValueError, match="max_tokens 1024 > the model's 512"):
        EmbeddingRuntime(max_tokens=1024)
