"""model_server fixtures: a tiny GPT-NeoX that has memorised Korean text, real servers on loopback."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import torch

from kovr.prompt import KULLM
from kovr.settings import Settings, load_settings
from tests.servers import serve_in_thread

# Memorised by the tiny model, so greedy output is Hangul whose syllables are split across
# byte-level tokens (the tokenizer's vocabulary is too small to merge them all).
KOREAN_TEXT = "안녕하세요 반갑습니다. 오늘은 날씨가 맑고 따뜻합니다. 세종대왕은 훈민정음을 만들었습니다.\n"
PROMPT = "질문: 인사해 주세요.\n답:\n"


def _train_tiny_model(folder: Path) -> None:
    from transformers import GPTNeoXConfig, GPTNeoXForCausalLM

    from kovr.modeling.bpe import train_byte_level_bpe

    torch.manual_seed(0)
    tokenizer = train_byte_level_bpe([KOREAN_TEXT, PROMPT, "hello world"] * 5, vocab_size=320)
    config = GPTNeoXConfig(
        vocab_size=len(tokenizer), hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
        intermediate_size=128, max_position_embeddings=512, eos_token_id=tokenizer.eos_token_id,
        bos_token_id=tokenizer.eos_token_id, tie_word_embeddings=False,
    )
    model = GPTNeoXForCausalLM(config)
    ids = torch.tensor([tokenizer(PROMPT + KOREAN_TEXT * 2)["input_ids"]])
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    for _ in range(80):  # a few seconds: enough to memorise the sentence
        loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    KULLM.save(folder)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.set_num_threads(1)
    folder = tmp_path_factory.mktemp("tiny-neox")
    _train_tiny_model(folder)
    return folder


def model_settings(model_dir: Path, tmp: Path, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "model": str(model_dir), "data_dir": tmp, "device": "cpu", "max_concurrent_requests": 4, "max_queue": 4,
        "max_input_tokens": 200, "max_total_tokens": 400, "max_new_tokens_limit": 150, "torch_threads": 1,
    }
    values.update(overrides)
    return load_settings(**values)


serve = serve_in_thread


@contextmanager
def model_server(settings: Settings, **app_options: Any) -> Iterator[str]:
    from model_server.app import create_model_app

    with serve(create_model_app(settings, **app_options)) as url:
        yield url


@pytest.fixture(scope="session")
def server_url(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    settings = model_settings(tiny_model_dir, tmp_path_factory.mktemp("data"))
    with model_server(settings, keepalive_s=0.2) as url:
        yield url
