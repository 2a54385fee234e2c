"""Training: the per-worker loop and the Ray Train driver."""
