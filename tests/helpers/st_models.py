"""Small randomly initialised sentence-transformers model directories of several
architectures and poolings, made offline (the tokenizer is all-MiniLM-L6-v2's), for the
embeddings tests: the server must serve each as sentence-transformers itself would."""

from __future__ import annotations

import shutil
from pathlib import Path

TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.txt",
)
SHAPE = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2}

# name -> (transformers config class, its extra arguments, pooling, Dense out features or 0,
# Normalize): between them BERT with CLS pooling (the bge recipe), MPNet, XLM-RoBERTa and
# DistilBERT, mean / CLS / last-token / max pooling, a Dense head of another dimension.
KINDS = {
    "bert-cls": ("BertConfig", {}, "cls", 0, True),
    "mpnet-mean": ("MPNetConfig", {}, "mean", 0, False),
    "xlmr-lasttoken": ("XLMRobertaConfig", {"max_position_embeddings": 130}, "lasttoken", 0, True),
    "distilbert-max-dense": (
        "DistilBertConfig",
        {"dim": 32, "n_layers": 2, "n_heads": 2, "hidden_dim": 64},
        "max",
        16,
        True,
    ),
}


def make_model(kind: str, root: Path, seed: int = 0) -> Path:
    """A sentence-transformers directory ``root/kind`` of a random ``KINDS[kind]`` model."""
    import torch
    import transformers
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import (
        Dense,
        Normalize,
        Pooling,
        Transformer,
    )

    from serve_app.embeddings.model_files import default_model_dir

    config_class, extra, pooling, dense, normalize = KINDS[kind]
    torch.manual_seed(seed)
    base = root / f"{kind}-base"
    args = {**SHAPE, "intermediate_size": 64, "max_position_embeddings": 128, "pad_token_id": 0}
    config = getattr(transformers, config_class)(vocab_size=30522, **{**args, **extra})
    transformers.AutoModel.from_config(config).save_pretrained(base)
    for name in TOKENIZER_FILES:
        shutil.copy(default_model_dir() / name, base / name)
    modules = [Transformer(str(base), max_seq_length=64)]
    modules.append(Pooling(32, pooling_mode=pooling))
    if dense:
        modules.append(Dense(32, dense))
    if normalize:
        modules.append(Normalize())
    out = root / kind
    SentenceTransformer(modules=modules, device="cpu").save(str(out))
    shutil.rmtree(base)
    return out
