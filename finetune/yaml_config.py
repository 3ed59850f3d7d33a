"""Typed run configuration shared by every KoVR training command (text LoRA and visual reasoning).

One YAML file per experiment, plus ``--set section.key=value`` overrides on the command line, is
turned into a pydantic model and validated before anything heavy (torch, a model, data) loads.
Unknown keys are errors, so a typo never silently falls back to a default.

Reuse (e.g. ``kovr finetune-vr``)::

    from finetune.yaml_config import ConfigModel, RunSection, TrainSection, load_config, save_config

    class VRConfig(ConfigModel):
        run: RunSection
        train: TrainSection = TrainSection()
        vision: MyVisionSection = MyVisionSection()

    cfg = load_config(VRConfig, "finetune/vr/configs/tiny.yaml", ["train.max_steps=10"])
    # list entries by index: --set data.sources.0.weight=2
    save_config(cfg, run_dir)          # writes run_dir/config.yaml (the resolved configuration)

Every loading problem raises :class:`ConfigError` with a one-line, file-naming message.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

CONFIG_FILE = "config.yaml"


class ConfigError(ValueError):
    """The configuration is invalid; the message says which file and which key."""


class ConfigModel(BaseModel):
    """Base of every configuration section: unknown keys are errors, values are validated on assignment."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class RunSection(ConfigModel):
    """Where a run writes, how it is seeded and whether it picks up an interrupted run."""

    output_dir: Path = Path("runs/run")
    seed: int = Field(default=1234, ge=0)
    # "auto": continue from the newest checkpoint in output_dir when there is one; "never": refuse a
    # non-empty output_dir; a path: continue from that checkpoint folder.
    resume: str = "auto"
    device: Literal["auto", "cpu", "cuda"] = "auto"
    torch_threads: int | None = Field(default=None, ge=1)


class TrainSection(ConfigModel):
    """Optimisation and bookkeeping shared by all training loops (see finetune.loop)."""

    micro_batch_size: int = Field(default=4, ge=1)
    grad_accum_steps: int = Field(default=1, ge=1)
    max_steps: int | None = Field(default=None, ge=1, description="optimizer steps; wins over epochs")
    epochs: float = Field(default=1.0, gt=0)
    learning_rate: float = Field(default=2e-4, gt=0)
    weight_decay: float = Field(default=0.0, ge=0)
    betas: tuple[float, float] = (0.9, 0.999)
    max_grad_norm: float | None = Field(default=1.0, gt=0)
    max_bad_steps: int = Field(default=10, ge=1, description="non-finite steps in a row before a run stops")
    schedule: Literal["cosine", "linear", "constant"] = "cosine"
    warmup_steps: int | None = Field(default=None, ge=0)
    warmup_ratio: float = Field(default=0.03, ge=0, lt=1)
    min_lr_ratio: float = Field(default=0.0, ge=0, le=1)
    precision: Literal["auto", "bf16", "fp16", "fp32"] = "auto"
    gradient_checkpointing: bool | Literal["auto"] = "auto"
    log_every: int = Field(default=10, ge=1)
    eval_every: int | None = Field(default=None, ge=1, description="optimizer steps; None: at the end only")
    save_every: int | None = Field(default=None, ge=1, description="optimizer steps; None: at the end only")
    keep_checkpoints: int = Field(default=2, ge=1)
    progress_bar: bool = True

    def warmup_for(self, total_steps: int) -> int:
        if self.warmup_steps is not None:
            return min(self.warmup_steps, total_steps)
        return round(self.warmup_ratio * total_steps)


class LoraSection(ConfigModel):
    """peft LoRA settings; GPT-NeoX module names by default (Polyglot-ko)."""

    r: int = Field(default=8, ge=1)
    alpha: float = Field(default=16.0, gt=0)
    dropout: float = Field(default=0.05, ge=0, lt=1)
    target_modules: list[str] = Field(default_factory=lambda: ["query_key_value"])
    modules_to_save: list[str] = Field(default_factory=list)
    bias: Literal["none", "all", "lora_only"] = "none"

    @model_validator(mode="after")
    def _check(self) -> LoraSection:
        if not self.target_modules:
            raise ValueError("lora.target_modules must name at least one module")
        return self


C = TypeVar("C", bound=BaseModel)


def parse_overrides(items: list[str] | None) -> dict[str, Any]:
    """``["train.max_steps=10", "lora.target_modules=[query_key_value, dense]"]`` -> nested dict.

    Values are read as YAML, so numbers, booleans, null and lists work as written.
    """
    result: dict[str, Any] = {}
    for item in items or []:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key or any(not part for part in key.split(".")):
            raise ConfigError(f"--set {item!r}: expected section.key=value")
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError as exc:
            raise ConfigError(f"--set {item!r}: value is not valid YAML ({exc.__class__.__name__})") from None
        node = result
        *parents, leaf = key.split(".")
        for part in parents:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"--set {item!r}: {part!r} is set both as a value and as a section")
            node = child
        node[leaf] = value
    return result


def deep_merge(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    """``top`` over ``base``, section by section (lists and values are replaced, not merged)."""
    merged = dict(base)
    for key, value in top.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        elif isinstance(value, dict) and isinstance(merged.get(key), list) and all(k.isdigit() for k in value):
            merged[key] = _merge_list(key, merged[key], value)
        else:
            merged[key] = value
    return merged


def _merge_list(name: str, items: list[Any], top: dict[str, Any]) -> list[Any]:
    """``--set data.sources.1.weight=2``: index into a list of sections."""
    out = list(items)
    for index, value in top.items():
        i = int(index)
        if i >= len(out):
            raise ConfigError(f"--set {name}.{index}: {name} has only {len(out)} entries")
        out[i] = deep_merge(out[i], value) if isinstance(value, dict) and isinstance(out[i], dict) else value
    return out


def read_yaml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: configuration file not found")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{path}{where}: not valid YAML ({getattr(exc, 'problem', exc)})") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of sections, got {type(data).__name__}")
    return data


def format_validation_error(exc: ValidationError, source: str) -> str:
    problems = []
    for err in exc.errors():
        loc = ".".join(str(part) for part in err["loc"]) or "(top level)"
        msg = "unknown key" if err["type"] == "extra_forbidden" else err["msg"]
        problems.append(f"{loc}: {msg}")
    return f"{source}: invalid configuration: " + "; ".join(problems)


def build_config(cls: type[C], data: dict[str, Any], source: str = "configuration") -> C:
    try:
        return cls.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, source)) from None


def load_config(cls: type[C], path: str | Path | None, overrides: list[str] | None = None) -> C:
    """Read YAML (optional), apply ``--set`` overrides, validate into ``cls``."""
    data = read_yaml(path) if path is not None else {}
    data = deep_merge(data, parse_overrides(overrides))
    source = str(path) if path is not None else "configuration"
    if overrides:
        source += " (with --set)"
    return build_config(cls, data, source)


def config_to_dict(cfg: BaseModel) -> dict[str, Any]:
    """Plain JSON-able dict (paths as strings, tuples as lists)."""
    return json.loads(cfg.model_dump_json())


def save_config(cfg: BaseModel, run_dir: str | Path, name: str = CONFIG_FILE) -> Path:
    """Write the resolved configuration (every default filled in) into the run folder."""
    path = Path(run_dir) / name
    path.parent.mkdir(parents=True, exist_ok=True)
    text = yaml.safe_dump(config_to_dict(cfg), allow_unicode=True, sort_keys=False)
    path.write_text(text, encoding="utf-8")
    return path
