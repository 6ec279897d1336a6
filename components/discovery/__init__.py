"""Checkpoint discovery: complete checkpoints in a model directory that this model has not handled."""
