"""Text embeddings: all-MiniLM-L6-v2, OpenAI-compatible."""
