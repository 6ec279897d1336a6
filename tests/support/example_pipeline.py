"""The example model and its pipeline config, as every test builds them: the one place for config builders.

``example_config_dict`` is the shipped ``examples/pipeline.yaml`` pointed at a trained model (or cut to its
export-and-publish core for a model dir nobody trained) and a destination, with overrides; ``write_config`` /
``write_configs`` write such dicts where a test wants them; ``example_config_file`` is the two together and
``example_config`` that file loaded.
Test modules import these from here, never from one another.
"""

from __future__ import annotations

import dataclasses
import socket
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

if TYPE_CHECKING:
    from components.config import PipelineConfig

PROJECT_ROOT = Path(__file__).resolve().parent.parent.parent


@dataclasses.dataclass(frozen=True)
class TrainedModel:
    model_dir: Path
    data_dir: Path
    steps: tuple[int, ...]

    @property
    def eval_data(self) -> Path:
        return self.data_dir / "eval.tfrecord"


def example_config_dict(
    model: TrainedModel | str | Path,
    destination: str | Path,
    *,
    merge: Mapping[str, Mapping[str, Any]] | None = None,
    **replace: Any,
) -> dict[str, Any]:
    """The shipped ``examples/pipeline.yaml`` as a dict, publishing to ``destination``: the one config builder.

    ``model`` a TrainedModel: the whole example pointed at it (evaluation and warmup read its eval data, warmup
    takes 10 records). ``model`` a model_dir (str or Path) that nobody trained: only what export and publish
    read (name, model code by import path, the predict receiver, the strategies, the destination), for tests
    that publish hand-made exports and never load the model.
    ``merge`` updates sections field by field (a None value removes that field), e.g.
    ``merge={"destination": {"keep": 1}}``; ``replace`` sets top-level keys whole, e.g. ``name="beta"``.
    """
    example = yaml.safe_load((PROJECT_ROOT / "examples" / "pipeline.yaml").read_text())
    if isinstance(model, TrainedModel):
        data = example
        data["model_dir"] = str(model.model_dir)
        data["evaluation"]["input_fn_kwargs"]["path"] = str(model.eval_data)
        data["warmup"]["path"] = str(model.eval_data)
        data["warmup"]["num_records"] = 10
    else:
        data = {
            "name": example["name"],
            "model_dir": str(model),
            "model_fn": example["model_fn"],
            "receivers": {"predict": example["receivers"]["predict"]},
            "strategies": example["strategies"],
            "destination": {},
        }
    data["destination"] = {**data["destination"], "uri": str(destination)}
    for section, fields in (merge or {}).items():
        merged = {**data.get(section, {}), **fields}
        data[section] = {key: value for key, value in merged.items() if value is not None}
    data.update(replace)
    return data


def write_config(data: Mapping[str, Any] | str, path: Path) -> Path:
    """``data`` (a config dict, or YAML text as it is) as a config file at ``path``, its folder created."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(dict(data)))
    return path


def write_configs(folder: Path, configs: Mapping[str, Mapping[str, Any] | str]) -> Path:
    """A configs folder as the DAG factory reads it: ``<key>.yaml`` for each of ``configs``; returns ``folder``."""
    for stem, data in configs.items():
        write_config(data, folder / f"{stem}.yaml")
    return folder


def example_config_file(
    model: TrainedModel | str | Path,
    folder: Path,
    destination: str | Path | None = None,
    *,
    file_name: str | None = None,
    merge: Mapping[str, Mapping[str, Any]] | None = None,
    **replace: Any,
) -> Path:
    """``example_config_dict(...)`` written to ``folder/configs/<file_name>`` (default ``<name>.yaml``), for
    tests that hand a path to the CLI, a DAG or a trigger; the destination defaults to ``folder/published``."""
    dest = destination if destination is not None else folder / "published"
    data = example_config_dict(model, dest, merge=merge, **replace)
    return write_config(data, folder / "configs" / (file_name or f"{data['name']}.yaml"))


def example_config(
    model: TrainedModel | str | Path,
    folder: Path,
    destination: str | Path | None = None,
    *,
    merge: Mapping[str, Mapping[str, Any]] | None = None,
    **replace: Any,
) -> PipelineConfig:
    """``example_config_file(...)`` loaded, as a DAG task loads it (its ``source`` is the file)."""
    from components.config import load_config

    return load_config(example_config_file(model, folder, destination, merge=merge, **replace))


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
