"""Evaluation and blessing of checkpoints."""
