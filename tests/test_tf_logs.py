"""TensorFlow's start-up notices are logged at INFO, real errors stay ERROR, and nothing reaches stderr.

A real TensorFlow import in a task process is in test_tf_logs_import.py (the tf tier: it takes seconds)."""

from __future__ import annotations

import logging

from components.tf_logs import level_of, log_lines

CHILD_STDERR = """\
2026-12-01 15:36:36.013339: I external/local_tsl/tsl/cuda/cudart_stub.cc:31] Could not find cuda drivers on your machine, GPU will not be used.
2026-12-01 15:36:36.038624: E external/local_xla/xla/stream_executor/cuda/cuda_dnn.cc:9261] Unable to register cuDNN factory: Attempting to register factory for plugin cuDNN when one has already been registered
2026-12-01 15:36:38.146899: W tensorflow/compiler/tf2tensorrt/utils/py_utils.cc:38] TF-TRT Warning: Could not find TensorRT
2026-12-01 15:36:39.000001: W tensorflow/core/framework/op_kernel.cc:1827] OP_REQUIRES failed at save_restore_v2_ops.cc:209 : NOT_FOUND
2026-12-01 15:36:39.000002: E tensorflow/core/framework/tensor.cc:100] Out of memory while trying to allocate 1073741824 bytes.
E0000 00:00:1733064999.123456   12345 cuda_executor.cc:1015] could not retrieve CUDA device count: CUDA_ERROR_NOT_INITIALIZED
INFO components.stages: no new checkpoints in /m
WARNING components.discovery.lease: the lease of step 300 expired
ERROR components.stage_entry: stage failed
Traceback (most recent call last):
  File "x.py", line 1, in <module>
ValueError: bad
a line user code printed
"""


def test_each_line_gets_its_own_level_and_continuation_lines_follow_theirs(caplog) -> None:
    logger = logging.getLogger("test_tf_logs")
    with caplog.at_level(logging.DEBUG, logger="test_tf_logs"):
        log_lines(CHILD_STDERR.splitlines(True), logger, "[export] ")
    levels = [(r.levelname, r.getMessage().split("] ", 2)[-1][:40]) for r in caplog.records]
    assert [level for level, _ in levels] == [
        "INFO", "INFO", "INFO",  # start-up notices, whatever level TF gave them
        "WARNING", "ERROR", "ERROR",  # real TF warnings and errors, TF's and absl's prefixes
        "INFO", "WARNING", "ERROR", "ERROR", "ERROR", "ERROR",  # our logging; a traceback stays ERROR
        "ERROR",  # an unprefixed line continues the one before it
    ]
    assert all(r.getMessage().startswith("[export] ") for r in caplog.records)


def test_a_line_without_a_prefix_at_the_start_is_info() -> None:
    assert level_of("hello from user code") == logging.INFO
    assert level_of("Traceback (most recent call last):", logging.INFO) == logging.ERROR
