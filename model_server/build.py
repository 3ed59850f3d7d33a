"""Building the local model service from settings: model (+ adapter), align model, engine."""

from __future__ import annotations

import logging

import torch

from kovr.modeling.align_model import AlignModel
from kovr.modeling.language_model import language_model_source
from kovr.settings import Settings
from model_server.engine import Engine, KVCache
from model_server.loading import LoadedModel, load_model
from model_server.metrics import ServerMetrics
from model_server.service import ModelService

log = logging.getLogger(__name__)


def load_for_settings(settings: Settings) -> tuple[LoadedModel, AlignModel | None]:
    """The language model to serve and, with a vr checkpoint, its align model.

    With a vr checkpoint and no explicit KOVR_MODEL, the checkpoint's own language model (merged
    stage-2 LM, or base + LoRA) is served, so the image prefix meets the LM it was trained for.
    """
    if settings.torch_threads:
        torch.set_num_threads(settings.torch_threads)
    checkpoint = settings.vr_checkpoint
    if checkpoint is None:
        return load_model(settings), None
    if settings.model is None:
        source, lora = language_model_source(checkpoint)
        if lora and not settings.adapter:
            settings = settings.model_copy(update={"adapter": lora})
        loaded = load_model(settings, source)
    else:
        loaded = load_model(settings)
    align = AlignModel.from_checkpoint(checkpoint, device=loaded.device, dtype=loaded.dtype)
    # Ignored [index]: torch types a module's attribute as Tensor | Module; this one is the embedding weight.
    hidden = int(loaded.model.get_input_embeddings().weight.shape[1])  # type: ignore[index]
    if align.config.lm_hidden != hidden:
        raise ValueError(
            f"align model {checkpoint} projects to width {align.config.lm_hidden}, "
            f"but the served model's embeddings are {hidden} wide"
        )
    return loaded, align


def kv_cache_kind(settings: Settings, loaded: LoadedModel) -> KVCache:
    """settings.kv_cache, with "auto" resolved: static on CUDA, dynamic on the CPU.

    On the CPU the static one is no faster (its per-row column writes cost about what the dynamic
    one's rebuilds save; docs/BENCHMARKS.md) and holds max_concurrent_requests x max_total_tokens
    from the start, where the dynamic one holds only the tokens in use.
    """
    if settings.kv_cache != "auto":
        return settings.kv_cache
    return "static" if loaded.device.type == "cuda" else "dynamic"


def build_service(settings: Settings) -> ModelService:
    loaded, align = load_for_settings(settings)
    engine = Engine(
        loaded,
        slots=settings.max_concurrent_requests,
        max_queue=settings.max_queue,
        prefills_per_step=settings.max_batch_size,
        threads=settings.torch_threads,
        ignore_eos=settings.ignore_eos,
        kv_cache=kv_cache_kind(settings, loaded),
        max_total_tokens=settings.max_total_tokens,
        graph_batch_sizes=settings.cuda_graph_batch_sizes if settings.cuda_graphs else None,
        batch_images=settings.batch_image_prefill,
    )
    metrics = ServerMetrics()
    metrics.watch(lambda: engine.queue_length, lambda: engine.running)
    log.info("serving %s on %s (%s), images: %s", loaded.model_id, loaded.device, loaded.dtype, align is not None)
    return ModelService(settings, loaded, engine, align, metrics)
