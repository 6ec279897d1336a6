"""What a published Keras version must do, checked inside the Keras interpreter (TF 2.21).

``CHECK_PUBLISHED`` takes ``<published servable folder> <model_dir>`` (both local) and prints one JSON
line: per version, whether it loads with ``tf.saved_model.load`` and answers exactly as ``model.predict``
with the checkpoint's weights (its ``serving_default`` signature and its ``serve`` endpoint), how many
warmup records it holds and how many replay, and the TensorFlow version in its manifest.
"""

from __future__ import annotations

CHECK_PUBLISHED = """
import json, os, sys
import numpy as np, tensorflow as tf
from examples.keras.model import build_model, make_data
from components.warmup import tfrecord
from components.warmup.replay import replay
from components.warmup.signatures import read_serving_graph
from tensorflow_serving.apis import prediction_log_pb2

published, model_dir = sys.argv[1], sys.argv[2]
features, _ = make_data(16, seed=5)
report = {"tf": tf.__version__}
for version in sorted(os.listdir(published), key=lambda v: (not v.isdigit(), v)):
    if not version.isdigit():
        continue
    folder = os.path.join(published, version)
    model = build_model()
    model.load_weights(os.path.join(model_dir, f"ckpt-{int(version):03d}.weights.h5"))
    expected = model.predict(features, verbose=0)
    loaded = tf.saved_model.load(folder)
    answered = loaded.signatures["serving_default"](**{k: tf.constant(v) for k, v in features.items()})
    served = loaded.serve(features)
    with open(os.path.join(folder, "assets.extra", "tf_serving_warmup_requests"), "rb") as handle:
        records = tfrecord.scan(handle).records
    first = prediction_log_pb2.PredictionLog.FromString(records[0])
    replayed = replay(read_serving_graph(folder), records)
    report[version] = {
        "signatures": sorted(loaded.signatures),
        "same_as_predict": all(
            np.array_equal(expected[name], answered[name].numpy()) and np.array_equal(expected[name], served[name].numpy())
            for name in ("click", "value")
        ),
        "warmup_records": len(records),
        "warmup_inputs": {k: tf.dtypes.as_dtype(v.dtype).name for k, v in first.predict_log.request.inputs.items()},
        "replayed": replayed.records,
        "manifest_tf": json.load(open(os.path.join(folder, "assets.extra", "export_manifest.json")))["tensorflow_version"],
    }
print(json.dumps(report))
"""

