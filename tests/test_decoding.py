"""The one decoder's rule, and that its three callers (config, strategy options, artifacts) follow it."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any, Literal

import pytest

from components.artifacts import CheckpointArtifact, from_jsonable
from components.config import parse_config
from components.config.errors import ConfigError
from components.decoding import DecodeError, decode
from components.export.errors import StrategyConfigError
from components.export.strategies.options import FinalOptions, parse_options
from tests.support.example_pipeline import TrainedModel, example_config_dict


@dataclasses.dataclass(frozen=True)
class Inner:
    name: str
    weight: float = 1.0


@dataclasses.dataclass(frozen=True)
class Outer:
    count: int
    inners: tuple[Inner, ...] = ()
    mode: Literal["a", "b"] = "a"
    limit: int | None = None
    flag: bool = False
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)


def test_the_rule() -> None:
    decoded = decode(Outer, {"count": 2, "inners": [{"name": "x", "weight": 3}], "mode": "b", "limit": None})
    assert decoded == Outer(count=2, inners=(Inner("x", 3.0),), mode="b", limit=None)
    assert isinstance(decoded.inners, tuple) and isinstance(decoded.inners[0].weight, float)  # int -> float
    assert decode(Outer, {"count": 1, "limit": 4}).limit == 4


@pytest.mark.parametrize(
    ("data", "path", "message"),
    [
        ({"count": True}, "count", "expected an integer, got True"),  # a bool is not an int
        ({"count": 1.5}, "count", "expected an integer, got 1.5"),
        ({"count": 1, "flag": 1}, "flag", "expected true or false, got 1"),
        ({"count": 1, "mode": "c"}, "mode", "expected one of ['a', 'b'], got 'c'"),
        ({"count": 1, "inners": [{"name": "x", "weight": False}]}, "inners[0].weight", "expected a number"),
        ({"count": 1, "inners": "x"}, "inners", "expected a list"),
        ({"count": None}, "count", "expected an integer, got None"),  # None only where Optional
        ({}, "count", "required field is missing"),
        ({"count": 1, "cuont": 2}, "", "Outer has no field(s) ['cuont']"),
    ],
)
def test_what_the_rule_refuses(data: dict, path: str, message: str) -> None:
    with pytest.raises(DecodeError, match=re.escape(message)) as caught:
        decode(Outer, data)
    assert caught.value.path == path


def test_the_callers_share_the_integer_rule(tmp_path: Path) -> None:
    fake = TrainedModel(tmp_path / "model", tmp_path / "data", ())
    data = example_config_dict(fake, tmp_path / "published", merge={"destination": {"keep": True}})
    with pytest.raises(ConfigError, match=r"destination\.keep.*expected an integer, got True"):
        parse_config(data, base_dir=tmp_path)
    with pytest.raises(StrategyConfigError, match="parameter 'max_steps' must be a positive integer, got True"):
        parse_options(FinalOptions, {"max_steps": True}, "final")
    with pytest.raises(DecodeError, match="step: expected an integer, got True"):
        from_jsonable(CheckpointArtifact, {"uri": "/m/model.ckpt-1", "model_name": "m", "step": True})
    with pytest.raises(ValueError, match="expected a Checkpoint artifact"):
        CheckpointArtifact.from_dict({"type": "Model", "uri": "/m", "model_name": "m", "step": 1})
