"""Building the language model (loaded, or a tiny one pre-trained here), the align model (a pretrained
encoder, or a tiny random one), what trains in each stage, and the checkpoint folder model_server loads."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from finetune.loop import LoopSpec, train_loop
from finetune.modeling import Runtime, add_lora, load_base_model, resolve_runtime, tiny_model, train_tokenizer
from finetune.objective import response_loss
from finetune.optim import build_optimizer, build_scheduler
from finetune.vr.config import VRConfig
from finetune.vr.data import (
    IGNORE,
    Encoded,
    VRRecord,
    encode_many,
    epoch_batches,
    load_captions,
    load_text_instructions,
    load_vqa,
)
from finetune.yaml_config import TrainSection
from kovr.modeling.align_config import LM_DIR, LORA_DIR, VISION_DIR, AlignConfig, TokenSelection
from kovr.modeling.align_model import AlignModel
from kovr.modeling.language_model import language_model_source
from kovr.prompt import PromptTemplate

BASE_LM_DIR = "base_lm"
RUN_INFO_FILE = "vr_run.json"


def build_language_model(cfg: VRConfig, run_dir: Path, template: PromptTemplate) -> tuple[Any, Any, str, Runtime]:
    """(model, tokenizer, source to record in the checkpoint, runtime)."""
    from transformers import AutoTokenizer

    runtime = resolve_runtime(cfg.run.device, cfg.train, "sdpa")
    if cfg.stage == 2 and cfg.init_from is not None:
        source, _ = language_model_source(cfg.init_from)
    elif cfg.language_model.name_or_path is not None:
        source = cfg.language_model.name_or_path
    else:
        source = str(_tiny_base(cfg, run_dir, template, runtime))
    revision = cfg.language_model.revision if source == cfg.language_model.name_or_path else None
    tokenizer = AutoTokenizer.from_pretrained(source, revision=revision)
    if tokenizer.eos_token_id is None:
        raise ValueError(f"{source}: the tokenizer has no EOS token")
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = load_base_model(source, runtime, "sdpa", revision)
    return model.to(runtime.device), tokenizer, source, runtime


def build_align(cfg: VRConfig, lm_hidden: int) -> AlignModel:
    vision = cfg.vision
    if cfg.stage == 2 and cfg.init_from is not None:
        align = AlignModel.from_checkpoint(cfg.init_from)
        if align.config.lm_hidden != lm_hidden:
            raise ValueError(f"{cfg.init_from}: projector width {align.config.lm_hidden} != LM hidden {lm_hidden}")
        if align.config.prefix_positions != vision.prefix_positions:
            raise ValueError(f"{cfg.init_from}: vision.prefix_positions is {vision.prefix_positions}, but the "
                             f"stage-1 checkpoint was trained with {align.config.prefix_positions}")
        align.bundle_vision = align.bundle_vision or vision.train_encoder
    elif vision.encoder is None:
        tiny = vision.tiny
        align = make_tiny_align_model(
            lm_hidden, image_size=tiny.image_size, patch_size=tiny.patch_size, vision_hidden=tiny.hidden_size,
            layers=tiny.num_layers, heads=tiny.num_heads, projector_type=vision.projector_type,
            token_selection=vision.token_selection, feature_layer=vision.feature_layer,
            prefix_positions=vision.prefix_positions, seed=cfg.run.seed,
        )
    else:
        align = AlignModel.from_config(AlignConfig(
            vision_encoder=vision.encoder, vision_revision=vision.revision, feature_layer=vision.feature_layer,
            token_selection=vision.token_selection, projector_type=vision.projector_type, lm_hidden=lm_hidden,
            prefix_positions=vision.prefix_positions,
        ))
    align.set_vision_trainable(vision.train_encoder)
    align.bundle_vision = align.bundle_vision or vision.train_encoder
    return align


def set_trainable(cfg: VRConfig, align: AlignModel, lm: Any, runtime: Runtime) -> Any:
    """Stage 1: projector only. Stage 2: projector + LoRA (or the whole LM, or none of it)."""
    for param in align.projection_parameters():
        param.requires_grad_(True)
    mode = "frozen" if cfg.stage == 1 else cfg.language_model.stage2_training
    if mode == "lora":
        return add_lora(lm, cfg.lora, runtime)
    lm.requires_grad_(mode == "full")
    return lm


# --- a tiny random vision tower for CPU runs (and the tests' align checkpoints) ---------------
def make_tiny_align_model(
    lm_hidden: int,
    *,
    image_size: int = 32,
    patch_size: int = 8,
    vision_hidden: int = 32,
    layers: int = 2,
    heads: int = 2,
    projector_type: str = "mlp2x_gelu",
    token_selection: TokenSelection = "patch",
    feature_layer: int = -1,
    language_model: str = "",
    train_vision_encoder: bool = False,
    prefix_positions: bool = False,
    seed: int = 0,
) -> AlignModel:
    """A random-init tiny CLIP vision tower + projector (no hub access); bundled when saved."""
    import torch
    from transformers import CLIPVisionConfig, CLIPVisionModel

    torch.manual_seed(seed)
    vcfg = CLIPVisionConfig(
        hidden_size=vision_hidden,
        intermediate_size=vision_hidden * 4,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        image_size=image_size,
        patch_size=patch_size,
        projection_dim=vision_hidden,
    )
    config = AlignConfig(
        vision_encoder=VISION_DIR,
        feature_layer=feature_layer,
        token_selection=token_selection,
        projector_type=projector_type,
        language_model=language_model,
        image_size=image_size,
        lm_hidden=lm_hidden,
        train_vision_encoder=train_vision_encoder,
        prefix_positions=prefix_positions,
    )
    model = AlignModel(config, CLIPVisionModel(vcfg))
    model.bundle_vision = True
    return model


# --- a tiny language model for CPU runs --------------------------------------------------------
def _tiny_base(cfg: VRConfig, run_dir: Path, template: PromptTemplate, runtime: Runtime) -> Path:
    """A tiny GPT-NeoX that has read the data's text (no images), built once per run folder."""
    folder = run_dir / BASE_LM_DIR
    if (folder / "config.json").is_file():
        return folder
    from finetune.train import seed_everything

    seed_everything(cfg.run.seed)
    records = _text_records(cfg)
    texts = [template.render(r.instruction, r.input) + r.output for r in records]
    tokenizer = train_tokenizer(texts[: cfg.language_model.tiny.tokenizer_records], cfg.language_model.tiny.vocab_size)
    model = tiny_model(cfg.language_model.tiny, tokenizer, cfg.data.max_seq_len, cfg.run.seed).to(runtime.device)
    items = [e for e in encode_many(records, tokenizer, template, False, cfg.data.max_seq_len, 0) if e]
    tiny = cfg.language_model.tiny
    train = TrainSection(micro_batch_size=tiny.pretrain_batch_size, max_steps=tiny.pretrain_steps,
                         learning_rate=tiny.pretrain_learning_rate, warmup_ratio=0.05, weight_decay=0.01,
                         progress_bar=cfg.train.progress_bar, log_every=cfg.train.log_every)

    optimizer = build_optimizer(model, train)
    print(f"작은 언어 모델 사전 학습 pre-training the tiny LM on {len(items)} text examples", flush=True)
    train_loop(LoopSpec(
        model=model, optimizer=optimizer, scheduler=build_scheduler(optimizer, train, tiny.pretrain_steps),
        run_dir=run_dir / "base_lm_run", train=train, total_steps=tiny.pretrain_steps,
        batches_for_epoch=epoch_batches(items, train.micro_batch_size, cfg.run.seed, cfg.data.batching),
        loss_fn=text_loss_sum, weight_fn=lambda b: sum(it.loss_tokens for it in b),
        tokens_fn=lambda b: sum(len(it.input_ids) for it in b),
    ))
    model.save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)
    template.save(folder)
    return folder


def _text_records(cfg: VRConfig) -> list[VRRecord]:
    """Everything the data section names, read as text: captions, questions and answers, instructions."""
    limit = cfg.data.max_records
    records = [r for p in cfg.data.caption_files() if p.is_file() for r in load_captions(p, limit)]
    records += [r for p in cfg.data.vqa_files() if p.is_file() for r in load_vqa(p, limit)]
    records += load_text_instructions(cfg.data)[0]
    return records


def text_loss_sum(model: Any, items: list[Encoded]) -> tuple[Any, int]:
    import torch

    device = next(model.parameters()).device
    length = max(len(it.input_ids) for it in items)
    ids = torch.zeros((len(items), length), dtype=torch.long, device=device)
    labels = torch.full((len(items), length), IGNORE, dtype=torch.long, device=device)
    mask = torch.zeros_like(ids)
    for i, it in enumerate(items):
        n = len(it.input_ids)
        ids[i, :n], labels[i, :n], mask[i, :n] = torch.tensor(it.input_ids), torch.tensor(it.labels), 1
    return response_loss(model, labels, input_ids=ids, attention_mask=mask)


# --- the checkpoint folder -----------------------------------------------------------------------
def save_checkpoint_folder(cfg: VRConfig, out: Path, model: Any, tokenizer: Any, template: PromptTemplate,
                           lm_source: str, info: dict[str, Any]) -> Path:
    """align/ as model_server loads it: projector (+ encoder), LM (merged, whole or adapter), template."""
    for stale in (LM_DIR, LORA_DIR):
        shutil.rmtree(out / stale, ignore_errors=True)
    align, lm = model.align, model.lm
    mode = "frozen" if cfg.stage == 1 else cfg.language_model.stage2_training
    bundle_lm = mode != "frozen" or _inside(lm_source, cfg.run.output_dir)
    align.config.language_model = lm_source
    align.config.prompt_template = template.name
    if mode == "lora" and cfg.language_model.save == "adapter":
        lm.save_pretrained(out / LORA_DIR)
        tokenizer.save_pretrained(out / LORA_DIR)
    elif bundle_lm:
        merged = lm.merge_and_unload() if mode == "lora" else lm
        merged.config.use_cache = True
        merged.save_pretrained(out / LM_DIR, safe_serialization=True)
        tokenizer.save_pretrained(out / LM_DIR)
        template.save(out / LM_DIR)
        align.config.language_model = LM_DIR
    align.save(out)
    template.save(out)
    (out / RUN_INFO_FILE).write_text(json.dumps(info, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    return out


def _inside(source: str, folder: Path) -> bool:
    """A tiny base built in the run folder must travel with the checkpoint."""
    try:
        return Path(source).resolve().is_relative_to(Path(folder).resolve())
    except OSError:
        return False


def read_run_info(checkpoint: Path) -> dict[str, Any]:
    path = Path(checkpoint) / RUN_INFO_FILE
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
