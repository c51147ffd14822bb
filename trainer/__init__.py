"""Dataset building, training, evaluation and the model registry (may import monitor, never the reverse)."""
