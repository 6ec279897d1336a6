"""Model pipeline configuration: one YAML file per model, validated on load."""

from components.config.errors import ConfigError
from components.config.loader import load_config, load_configs_dir, parse_config
from components.config.schema import PipelineConfig

__all__ = ["ConfigError", "PipelineConfig", "load_config", "load_configs_dir", "parse_config"]
