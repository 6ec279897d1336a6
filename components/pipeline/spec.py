"""The component contract, after TFX's ComponentSpec/Executor split, without importing tfx.

A component declares its typed inputs, outputs and parameters (each stage's ``spec.py``); its executor
does the I/O. Every Airflow task goes through ``components.pipeline.envelope``, which rebuilds the artifacts
XCom carried as JSON by the spec's input types and checks them before the executor runs; the plain
runner calls the same stage functions with the artifacts themselves.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from components.artifacts import Artifact


@dataclasses.dataclass(frozen=True)
class ComponentSpec:
    """What a stage consumes and produces; checked at the seam so wiring mistakes fail loudly."""

    name: str
    inputs: Mapping[str, type[Artifact]]
    outputs: Mapping[str, type[Artifact]]
    parameters: type

    def check_inputs(self, inputs: Mapping[str, Any]) -> None:
        missing = set(self.inputs) - set(inputs)
        if missing:
            raise TypeError(f"component {self.name!r} is missing input(s) {sorted(missing)}")
        for key, expected in self.inputs.items():
            values = inputs[key] if isinstance(inputs[key], (list, tuple)) else [inputs[key]]
            for value in values:
                if not isinstance(value, expected):
                    raise TypeError(
                        f"component {self.name!r} input {key!r} must be {expected.__name__}, "
                        f"got {type(value).__name__}"
                    )
