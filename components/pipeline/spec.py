"""How the envelope knows a stage: its name, which inputs are artifacts (of what type), and its call.

After TFX's ComponentSpec, without importing tfx and without declarations nothing reads: XCom carries
artifacts as JSON, and the envelope rebuilds each by the type named here and checks it before the stage
runs, so a wiring mistake fails loudly at the seam. The plain runner calls the stages with the artifacts
themselves. Each stage's parameters are its own frozen dataclass (``<stage>/spec.py``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

from components.artifacts import Artifact
from components.config.schema import PipelineConfig
from components.pipeline.options import RunOptions

# A stage as the envelope calls it: config, run options, inputs (artifacts rebuilt) -> a JSON-able result.
StageCall = Callable[[PipelineConfig, RunOptions, dict[str, Any]], Any]


@dataclasses.dataclass(frozen=True)
class StageSpec:
    """One stage the envelope can run; ``inputs`` lists only its artifact inputs (others pass as they are)."""

    name: str
    inputs: Mapping[str, type[Artifact]]
    call: StageCall

    def rebuilt(self, inputs: Mapping[str, Any]) -> dict[str, Any]:
        """``inputs`` as XCom carried them (JSON), with each artifact input (or list of them) rebuilt by
        its type."""
        return {name: self._rebuilt(name, value) if name in self.inputs else value for name, value in inputs.items()}

    def _rebuilt(self, name: str, value: Any) -> Any:
        if isinstance(value, (list, tuple)):
            return [self.inputs[name].from_dict(item) for item in value]
        return self.inputs[name].from_dict(value)

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
