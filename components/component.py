"""The component contract, after TFX's ComponentSpec/Executor split, without importing tfx.

A component declares its typed inputs, outputs and parameters; its executor does the I/O. The plain
runner (``components.runner``) and the Airflow operators (``plugins``) both call the same executors, so
the orchestrator only wires.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
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


@dataclasses.dataclass(frozen=True)
class Component:
    """A spec plus the executor that implements it."""

    spec: ComponentSpec
    executor: Callable[..., Any]
