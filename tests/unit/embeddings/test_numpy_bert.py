"""serve_app.embeddings.numpy_bert: the numpy twin of the torch runtime gives its vectors
(the woken standby answers with it while torch loads) and imports no torch."""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np

from serve_app.embeddings.bert_config import default_model_dir
from serve_app.embeddings.numpy_bert import NumpyEmbedder, gelu

TEXTS = [
    "oat milk",
    "Oatly barista edition 1 l",
    "",
    "Brot 500g Vollkorn, 2,49 EUR",
    "🍎 apples, Granny Smith",
    "tomatoes " * 400,  # truncated at max_tokens
    *(f"item {i} " * (i % 17) for i in range(40)),
]


def test_gelu_is_the_exact_one():
    x = np.linspace(-8, 8, 4001, dtype=np.float32)
    exact = np.array([v * 0.5 * (1 + math.erf(v / math.sqrt(2))) for v in x.tolist()])
    assert gelu(x).dtype == np.float32
    assert np.abs(gelu(x) - exact).max() < 2e-6


def test_vectors_and_token_counts_are_the_torch_runtimes(embedding_runtime):
    expected = embedding_runtime.embed(TEXTS)
    embedder = NumpyEmbedder(default_model_dir())
    vectors, counts = embedder.embed(TEXTS)
    assert vectors.dtype == np.float32 and vectors.shape == (len(TEXTS), 384)
    assert counts == expected.token_counts
    assert np.abs(vectors - expected.vectors).max() < 1e-5
    assert float((vectors * expected.vectors).sum(1).min()) > 0.99999
    # cut into many small forward passes (padding differs): the same vectors
    small = NumpyEmbedder(default_model_dir(), max_batch_tokens=64)
    assert np.abs(small.embed(TEXTS)[0] - vectors).max() < 1e-5


def test_it_imports_no_torch():
    probe = (
        "import sys\n"
        "from serve_app.embeddings.bert_config import default_model_dir\n"
        "from serve_app.embeddings.numpy_bert import NumpyEmbedder\n"
        "print(NumpyEmbedder(default_model_dir()).embed(['oat milk'])[0].shape)\n"
        "print('torch' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=120
    ).stdout
    assert out.split() == ["(1,", "384)", "False"], out
