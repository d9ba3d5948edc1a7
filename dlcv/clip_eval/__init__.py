"""CLIP for Problem 3: offline loading, zero-shot classification and the course's CLIP scores."""
