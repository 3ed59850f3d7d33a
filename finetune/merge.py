"""`kovr merge RUN_DIR --output DIR`: fold a run's LoRA adapter into its base model for serving.

The output is a plain transformers folder that TGI and model_server load directly:
``config.json``, ``model*.safetensors``, tokenizer files, ``generation_config.json``,
``prompt_template.json`` (the template the run trained with) and ``kovr_model.json``.
Before writing, the merged model's logits are compared with the adapter model's on sample prompts;
a difference above the tolerance stops the merge.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from finetune.finetune_config import FinetuneConfig
from finetune.yaml_config import ConfigError, load_config
from kovr.prompt import load_template

MODEL_INFO_FILE = "kovr_model.json"
# Relative tolerance: max |logit difference| / max |logit|. bf16/fp16 weights round W + BA.
DEFAULT_TOLERANCE = {"fp32": 1e-4, "bf16": 2e-2, "fp16": 1e-2}


class MergeError(RuntimeError):
    """The run cannot be merged, or the merged model does not match the adapter model."""


def _dtype(name: str, base_config: Any) -> Any:
    import torch

    if name == "auto":
        saved = getattr(base_config, "dtype", None) or getattr(base_config, "torch_dtype", None)
        if isinstance(saved, str):
            saved = getattr(torch, saved, None)
        return saved if saved in (torch.float16, torch.bfloat16, torch.float32) else torch.float32
    return {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[name]


def _dtype_name(dtype: Any) -> str:
    import torch

    return {torch.float32: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[dtype]


def _read_run(run_dir: Path) -> FinetuneConfig:
    if not (run_dir / "adapter" / "adapter_config.json").is_file():
        raise MergeError(f"{run_dir}: not a finished kovr finetune run (no adapter/adapter_config.json)")
    try:
        return load_config(FinetuneConfig, run_dir / "config.yaml")
    except ConfigError as exc:
        raise MergeError(str(exc)) from None


def _logits(model: Any, batches: list[Any]) -> list[Any]:
    import torch

    with torch.no_grad():
        return [model(input_ids=ids, use_cache=False).logits.float().cpu() for ids in batches]


def compare_logits(before: list[Any], after: list[Any]) -> tuple[float, float]:
    """(max absolute difference, that difference relative to the largest logit)."""
    diff = max(float((a - b).abs().max()) for a, b in zip(before, after, strict=True))
    scale = max(float(a.abs().max()) for a in before)
    return diff, diff / max(scale, 1e-6)


def merge_run(
    run_dir: str | Path, output: str | Path, *, dtype: str = "auto", tolerance: float | None = None,
    check: bool = True, device: str | None = None,
) -> dict[str, Any]:
    import torch
    from peft import PeftModel
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    run_dir, output = Path(run_dir), Path(output)
    cfg = _read_run(run_dir)
    if output.exists() and any(output.iterdir()):
        raise MergeError(f"{output}: folder exists and is not empty; choose a new --output")
    base_path = cfg.model.name_or_path or str(run_dir / "base_model")
    revision = cfg.model.revision if cfg.model.name_or_path else None
    torch_dtype = _dtype(dtype, AutoConfig.from_pretrained(base_path, revision=revision))
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    base: Any = AutoModelForCausalLM.from_pretrained(base_path, revision=revision, dtype=torch_dtype)
    base = base.to(device)
    tokenizer = AutoTokenizer.from_pretrained(run_dir / "adapter")
    model = PeftModel.from_pretrained(base, str(run_dir / "adapter")).eval()
    template = load_template(run_dir)

    report: dict[str, Any] = {"base_model": base_path, "dtype": _dtype_name(torch_dtype)}
    samples = [tokenizer(template.render(p.instruction, p.input), add_special_tokens=False,
                         return_tensors="pt")["input_ids"].to(device) for p in cfg.eval.prompts[:3]]
    before = _logits(model, samples) if check else []
    merged = model.merge_and_unload()
    if check:
        tol = tolerance if tolerance is not None else DEFAULT_TOLERANCE[report["dtype"]]
        diff, rel = compare_logits(before, _logits(merged, samples))
        report.update(max_abs_logit_diff=diff, relative_logit_diff=rel, tolerance=tol)
        if rel > tol:
            raise MergeError(
                f"merged logits differ from the adapter model's by {diff:.3g} ({rel:.2e} relative > {tol:.0e}); "
                "nothing was written"
            )
    _write(merged, tokenizer, template, cfg, run_dir, output, report)
    return report


def _write(merged: Any, tokenizer: Any, template: Any, cfg: FinetuneConfig, run_dir: Path, output: Path,
           report: dict[str, Any]) -> None:
    from transformers import GenerationConfig

    tmp = output.with_name(output.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    merged.config.use_cache = True
    merged.generation_config = GenerationConfig(
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id, max_new_tokens=cfg.eval.max_new_tokens,
    )
    merged.save_pretrained(tmp, safe_serialization=True)
    tokenizer.save_pretrained(tmp)
    template.save(tmp)
    info = {"demo": False, "merged_from": str(run_dir.resolve()), "template": template.name, **report}
    run_file = run_dir / "run.json"
    if run_file.is_file():
        run = json.loads(run_file.read_text(encoding="utf-8"))
        info.update(heldout_loss=run.get("heldout_loss"), perplexity=run.get("perplexity"), steps=run.get("steps"))
    (tmp / MODEL_INFO_FILE).write_text(json.dumps(info, ensure_ascii=False, indent=2), encoding="utf-8")
    if output.exists():
        output.rmdir()  # empty (checked above)
    tmp.rename(output)
