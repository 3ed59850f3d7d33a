"""Building the tokenizer, the base model (Polyglot-ko or a tiny random GPT-NeoX) and the LoRA wrapper."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from finetune.finetune_config import ModelSection, TinyModelSection
from finetune.yaml_config import LoraSection, TrainSection

EOS_TOKEN = "<|endoftext|>"
PAD_TOKEN = "<|pad|>"


@dataclass
class Runtime:
    """Where and in which precision a run computes."""

    device: Any  # torch.device
    dtype: Any  # weights of the base model
    autocast: Any | None  # autocast dtype (bf16 on GPU) or None
    gradient_checkpointing: bool
    mask: Literal["4d", "varlen"]  # for packed rows


def resolve_runtime(device: str, train: TrainSection, attn: str) -> Runtime:
    import torch

    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("run.device is cuda but no CUDA device is available")
    precision = train.precision
    if precision == "auto":
        precision = "bf16" if device == "cuda" and torch.cuda.is_bf16_supported() else "fp32"
    dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    checkpointing = train.gradient_checkpointing
    if checkpointing == "auto":
        checkpointing = device == "cuda"
    mask: Literal["4d", "varlen"] = "varlen" if attn == "flash_attention_2" else "4d"
    return Runtime(torch.device(device), dtype, dtype if dtype != torch.float32 else None, bool(checkpointing), mask)


def resolve_attn(cfg: ModelSection, device: str) -> str:
    if cfg.attn_implementation != "auto":
        return cfg.attn_implementation
    if device == "cuda":
        try:
            import flash_attn  # noqa: F401  # imported only to learn whether it is installed

            return "flash_attention_2"
        except ImportError:
            return "sdpa"
    return "sdpa"


def train_tokenizer(texts: list[str], vocab_size: int) -> Any:
    """A byte-level BPE trained on the data, for tiny models (covers any Hangul via bytes).

    model_server's trainer, with every merge kept (min_frequency 0) and finetune's pad token, so
    tiny runs keep the vocabularies they were measured with.
    """
    from kovr.modeling.bpe import train_byte_level_bpe

    return train_byte_level_bpe(texts, vocab_size, min_frequency=0, pad=PAD_TOKEN)


def load_tokenizer(cfg: ModelSection) -> Any:
    from transformers import AutoTokenizer

    assert cfg.name_or_path is not None
    tok = AutoTokenizer.from_pretrained(
        cfg.name_or_path, revision=cfg.revision, trust_remote_code=cfg.trust_remote_code
    )
    if tok.eos_token_id is None:
        raise ValueError(f"{cfg.name_or_path}: the tokenizer has no EOS token")
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token  # labels, not the pad id, decide what carries loss
    return tok


def tiny_model(tiny: TinyModelSection, tokenizer: Any, max_positions: int, seed: int) -> Any:
    import torch
    from transformers import GPTNeoXConfig, GPTNeoXForCausalLM

    config = GPTNeoXConfig(
        vocab_size=len(tokenizer),
        hidden_size=tiny.hidden_size,
        num_hidden_layers=tiny.num_layers,
        num_attention_heads=tiny.num_heads,
        intermediate_size=tiny.intermediate_size,
        max_position_embeddings=max(max_positions, 64),
        rotary_pct=tiny.rotary_pct,
        use_parallel_residual=tiny.parallel_residual,
        tie_word_embeddings=False,
        bos_token_id=tokenizer.eos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return GPTNeoXForCausalLM(config)


def load_base_model(path: str, rt: Runtime, attn: str, revision: str | None = None, trust: bool = False) -> Any:
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(
        path, revision=revision, dtype=rt.dtype, attn_implementation=attn, trust_remote_code=trust
    )


def add_lora(model: Any, lora: LoraSection, rt: Runtime) -> Any:
    """Freeze the base and wrap it with peft LoRA; checks that target modules exist."""
    from peft import LoraConfig, get_peft_model

    names = {name.rsplit(".", 1)[-1] for name, _ in model.named_modules()}
    to_save = [_head_name(model, m) if m in LM_HEAD_NAMES and m not in names else m for m in lora.modules_to_save]
    unknown = [m for m in lora.target_modules + to_save if m not in names]
    if unknown:
        linear = sorted({n.rsplit(".", 1)[-1] for n, m in model.named_modules() if type(m).__name__ == "Linear"})
        raise ValueError(f"lora: the model has no module named {unknown}; linear layers are {linear}")
    model.config.use_cache = False
    if rt.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    config = LoraConfig(
        r=lora.r, lora_alpha=lora.alpha,  # type: ignore[arg-type]  # peft takes any number
        lora_dropout=lora.dropout, target_modules=list(lora.target_modules),
        modules_to_save=to_save or None, bias=lora.bias, task_type="CAUSAL_LM",
    )
    return get_peft_model(model, config)


# GPT-NeoX's output layer is `embed_out` in transformers 4 and `lm_head` in 5: a config may name either.
LM_HEAD_NAMES = ("embed_out", "lm_head")


def _head_name(model: Any, name: str) -> str:
    """The model's own name for its output layer when ``name`` is the other version's."""
    head = model.get_output_embeddings()
    return next((n.rsplit(".", 1)[-1] for n, m in model.named_modules() if m is head and n), name)


def count_parameters(model: Any) -> tuple[int, int]:
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    return trainable, total


def save_base(model: Any, tokenizer: Any, folder: Path) -> None:
    """The tiny random base is saved with the run so that `kovr merge` can rebuild it."""
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)
