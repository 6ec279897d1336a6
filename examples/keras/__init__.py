"""The example Keras 3 model (TF 2.21 runtime): dense + embedding inputs, two outputs, synthetic data."""
