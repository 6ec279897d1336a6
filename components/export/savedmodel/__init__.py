"""Writing SavedModels: the machinery under every exporter, seed-compatible or pipeline.

* ``mode_graphs.py`` — one graph per mode from model_fn and a receiver, written as MetaGraphs;
* ``estimator_spec.py`` — EstimatorSpec checks that name the mode and the missing piece;
* ``by_reference.py`` — the checkpoint's files placed as ``variables/`` instead of restore + save;
* ``assets.py`` — ``assets_extra`` copied safely into ``assets.extra/``;
* ``verify.py`` — read signatures, verify every tag of every graph, the set manifest of multi-graph exports;
* ``versions.py`` — version names and the verified temp-folder-then-rename write;
* ``folder_names.py`` — which strategy, graph and version names can become folders.

Keeping the newest N versions and removing crashed temp folders is ``components.version_folders``'s (staging
keeps its local versions the same way). Nothing here knows the pipeline: no config, ledger or strategy is imported (tests/test_layers.py).
"""
