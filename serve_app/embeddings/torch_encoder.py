"""The embeddings on a CUDA device: sentence-transformers on torch in fp16 (docs/models.md).
Only a process that serves on a GPU imports this module, and torch with it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from sentence_transformers import SentenceTransformer


class TorchEncoder:
    """Padded token arrays -> sentence vectors on ``device`` (fp16 on CUDA, fp32 elsewhere)."""

    engine = "torch"

    def __init__(self, model_dir: Path, device: str):
        self.device = device
        model = SentenceTransformer(str(model_dir), device=device, local_files_only=True)
        self.model = model.half() if device == "cuda" else model.float()
        self.model.eval()

    @torch.inference_mode()
    def __call__(self, inputs: dict[str, np.ndarray]) -> np.ndarray:
        features = {name: torch.from_numpy(array).to(self.device) for name, array in inputs.items()}
        return self.model(features)["sentence_embedding"].float().cpu().numpy()
