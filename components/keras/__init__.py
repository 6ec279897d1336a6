"""Keras 3 models on a current TensorFlow: the framework-specific half of discovery, evaluation and export.

These modules run in the Keras runtime (``.venv-keras``: TF 2.21, keras 3), never in the Estimator
runtime (TF 2.15); ``runtime`` is the exception: it builds and names that environment without TF.
The shared stages (discovery core, blessing, warmup, publish, ledger) stay framework-free.
"""
