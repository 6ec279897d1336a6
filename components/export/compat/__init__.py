"""The seed APIs, kept call-compatible, for code written against tf.contrib, tf.estimator or Monolith.

* ``export_strategy.py`` — tf.contrib.learn's ``ExportStrategy(name, export_fn)``;
* ``exporters.py`` — tf.estimator's ``Exporter`` (a real ABC), ``FinalExporter``, ``LatestExporter``,
  ``BestExporter``;
* ``export_all_saved_models.py`` — ``export_all_saved_models`` (TRAIN / EVAL / PREDICT in one
  SavedModel, or one per mode);
* ``export_context.py`` — Monolith's ``ExportContext``, ``enter_export_mode`` and ``sharded_embedding``;
* ``standalone.py``, ``distributed.py`` — Monolith's ``StandaloneExporter`` and ``DistributedExporter``.

They write through ``components.export.savedmodel`` and never import the pipeline (config, ledger,
strategies); tests/test_layers.py holds them to it. The names are also importable from
``components.export``.
"""
