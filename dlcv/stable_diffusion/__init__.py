"""Stable Diffusion v1 offline: loading, Textual Inversion embeddings, generation (Problem 3)."""
