"""BERT's encoder, the architecture of all-MiniLM-L6-v2, as a few torch functions over its
safetensors weights; the tokenizer from its ``tokenizer.json`` with Hugging Face's
``tokenizers`` (the fast tokenizer transformers wraps).

Why not ``transformers.AutoModel``: loading a BERT through transformers imports far more than
BERT (its distributed-tensor helpers and sympy, ``torch._dynamo`` and triton, torchvision for
image losses). Measured on this machine in one process: 780 MB RSS after the load against
about 600 MB here, and 4-5 s of loading against a tenth of a second. The output is the same
(``tests/unit/embeddings/test_runtime.py`` checks it against sentence-transformers to cosine
>= 0.99999 on CPU and, on a GPU, in fp16).
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import load_file

from serve_app.embeddings.bert_config import load_tokenizer, read_config

__all__ = ["BertEncoder", "load_tokenizer"]


class BertEncoder:
    """The last hidden state of a BERT for a padded batch (``input_ids`` and an
    ``attention_mask`` of 1 for tokens, 0 for padding), in ``dtype`` on ``device``."""

    def __init__(self, model_dir: Path, device: str, dtype: torch.dtype) -> None:
        config = read_config(model_dir)
        self.hidden_size = config.hidden_size
        self.heads = config.heads
        self.layers = config.layers
        self.eps = config.eps
        self.max_positions = config.max_positions
        self.pad_token_id = config.pad_token_id
        self.dtype = dtype
        weights = load_file(str(model_dir / "model.safetensors"), device=device)
        self.weights = {
            name.removeprefix("bert."): tensor.to(dtype) if tensor.is_floating_point() else tensor
            for name, tensor in weights.items()
        }

    def _w(self, name: str) -> torch.Tensor:
        return self.weights[name]

    def _linear(self, x: torch.Tensor, name: str) -> torch.Tensor:
        return F.linear(x, self._w(f"{name}.weight"), self._w(f"{name}.bias"))

    def _norm(self, x: torch.Tensor, name: str) -> torch.Tensor:
        return F.layer_norm(
            x, (self.hidden_size,), self._w(f"{name}.weight"), self._w(f"{name}.bias"), self.eps
        )

    @torch.inference_mode()
    def __call__(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        batch, width = input_ids.shape
        x = (
            self._w("embeddings.word_embeddings.weight")[input_ids]
            + self._w("embeddings.position_embeddings.weight")[:width].unsqueeze(0)
            + self._w("embeddings.token_type_embeddings.weight")[0]
        )
        x = self._norm(x, "embeddings.LayerNorm")
        # additive mask: padding keys get the dtype's lowest value
        padding = (attention_mask == 0)[:, None, None, :]
        bias = torch.zeros(padding.shape, dtype=x.dtype, device=x.device)
        bias.masked_fill_(padding, torch.finfo(x.dtype).min)

        def heads(t: torch.Tensor) -> torch.Tensor:
            return t.view(batch, width, self.heads, -1).transpose(1, 2)

        for i in range(self.layers):
            layer = f"encoder.layer.{i}"
            q = heads(self._linear(x, f"{layer}.attention.self.query"))
            k = heads(self._linear(x, f"{layer}.attention.self.key"))
            v = heads(self._linear(x, f"{layer}.attention.self.value"))
            a = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)
            a = a.transpose(1, 2).reshape(batch, width, self.hidden_size)
            a = self._linear(a, f"{layer}.attention.output.dense")
            x = self._norm(a + x, f"{layer}.attention.output.LayerNorm")
            h = F.gelu(self._linear(x, f"{layer}.intermediate.dense"))
            h = self._linear(h, f"{layer}.output.dense")
            x = self._norm(h + x, f"{layer}.output.LayerNorm")
        return x
