"""Networks: the building blocks the problems' networks share (time embeddings, residual blocks)."""
