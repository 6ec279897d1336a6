"""The example model and its pipeline config, as every test builds them: one place for the config builder.

``example_config_dict`` is the shipped ``examples/pipeline.yaml`` pointed at a trained model and a
destination; ``write_config`` writes any such dict where a test wants it; ``config_for`` is the two
together, loaded. Test modules import these from here, never from one another.
"""

from __future__ import annotations

import dataclasses
import socket
from pathlib import Path
from typing import Any

import yaml

PROJECT_ROOT = Path(__file__).resolve().parent.parent.parent


@dataclasses.dataclass(frozen=True)
class TrainedModel:
    model_dir: Path
    data_dir: Path
    steps: tuple[int, ...]

    @property
    def eval_data(self) -> Path:
        return self.data_dir / "eval.tfrecord"


def example_config_dict(model: TrainedModel, destination: str | Path, **overrides: Any) -> dict[str, Any]:
    """The example pipeline config as a dict, pointing at ``model`` and publishing to ``destination``."""
    data = yaml.safe_load((PROJECT_ROOT / "examples" / "pipeline.yaml").read_text())
    data["model_dir"] = str(model.model_dir)
    data["evaluation"]["input_fn_kwargs"]["path"] = str(model.eval_data)
    data["warmup"]["path"] = str(model.eval_data)
    data["warmup"]["num_records"] = 10
    data["destination"]["uri"] = str(destination)
    for key, value in overrides.items():
        data[key] = value
    return data


def write_config(data: dict[str, Any], path: Path) -> Path:
    """``data`` as a YAML config file at ``path`` (its folder created)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data))
    return path


def config_for(model: TrainedModel, tmp_path: Path, evaluation: dict[str, Any] | None = None, **top: Any):
    """The example config for ``model`` with ``evaluation`` keys replaced, written to and loaded from a file."""
    from components.config import load_config

    data = example_config_dict(model, tmp_path / "published", **top)
    data["evaluation"].update(evaluation or {})
    data["evaluation"] = {k: v for k, v in data["evaluation"].items() if v is not None}
    return load_config(write_config(data, tmp_path / "configs" / "example.yaml"))


def upload_folder(local: Path, uri: str) -> str:
    """Upload every file below ``local`` to ``uri`` (the emulator bucket), keeping relative paths."""
    from components.storage import storage_for

    storage = storage_for(uri)
    for path in sorted(local.rglob("*")):
        if path.is_file():
            storage.upload_file(str(path), storage.join(uri, str(path.relative_to(local))))
    return uri


def write_eval_summaries(model: TrainedModel, steps: list[int]) -> dict[int, dict[str, float]]:
    """What train_and_evaluate leaves in model_dir/eval: Estimator.evaluate of each checkpoint."""
    import functools

    from examples.model import eval_input_fn, make_estimator

    estimator = make_estimator(model.model_dir)
    results = {}
    for step in steps:
        raw = estimator.evaluate(
            functools.partial(eval_input_fn, path=str(model.eval_data)),
            steps=2,
            checkpoint_path=str(model.model_dir / f"model.ckpt-{step}"),
        )
        results[step] = {k: float(v) for k, v in raw.items() if k != "global_step"}
    return results


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
