"""grocery-planner-ai: the private model server behind the Grocery Planner web app."""

__version__ = "0.1.0"

import os as _os

# Weights come from disk only; never let a library reach for a model hub at run time.
_os.environ.setdefault("HF_HUB_OFFLINE", "1")
_os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

# The model deployments an application may bind (a config's `args.models`; default: all)
MODELS = ("embeddings", "ocr", "solver")
