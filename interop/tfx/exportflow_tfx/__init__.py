"""exportflow's publisher as a TFX component (``ExportflowPusher``), for the TF-free TFX environment only.

Nothing else in exportflow imports TFX (tests/test_tfx_boundary.py checks it). Build the environment with
``uv sync --locked --project interop/tfx`` (README: "TFX interop").
"""
