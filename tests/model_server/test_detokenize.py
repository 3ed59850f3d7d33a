"""Incremental UTF-8 safe detokenisation with a byte-level BPE on Hangul, and stop hold-back."""

from __future__ import annotations

from pathlib import Path

import pytest
from transformers import AutoTokenizer, PreTrainedTokenizerBase

from model_server.detokenize import REPLACEMENT, IncrementalDecoder, StopMatcher

TEXT = "세종대왕은 훈민정음을 만들었습니다. 한글 날씨 ok!"


@pytest.fixture(scope="module")
def tokenizer(tiny_model_dir: Path) -> PreTrainedTokenizerBase:
    return AutoTokenizer.from_pretrained(tiny_model_dir)


def test_tokens_split_hangul_syllables(tokenizer: PreTrainedTokenizerBase) -> None:
    # The premise of the test below: some single tokens are not whole characters.
    ids = tokenizer(TEXT)["input_ids"]
    assert any(REPLACEMENT in tokenizer.decode([i]) for i in ids)


def test_released_text_never_breaks_a_character(tokenizer: PreTrainedTokenizerBase) -> None:
    ids = tokenizer(TEXT)["input_ids"]
    decoder = IncrementalDecoder(tokenizer)
    pieces = [decoder.push(i) for i in ids] + [decoder.flush()]
    assert all(REPLACEMENT not in p for p in pieces)
    assert "" in pieces[:-1]  # held back at least once, then released with the completing token
    assert "".join(pieces) == TEXT


def test_prompt_context_does_not_leak_into_output(tokenizer: PreTrainedTokenizerBase) -> None:
    prompt = tokenizer("질문: ")["input_ids"]
    decoder = IncrementalDecoder(tokenizer, prompt)
    answer = tokenizer("안녕하세요")["input_ids"]
    assert "".join(decoder.push(i) for i in answer) + decoder.flush() == "안녕하세요"


def _byte_ids(tokenizer: PreTrainedTokenizerBase, text: str) -> list[int]:
    """One token per UTF-8 byte (the byte-level alphabet), the worst case for a streamer."""
    ((mapped, _),) = tokenizer.backend_tokenizer.pre_tokenizer.pre_tokenize_str(text)
    return [tokenizer.convert_tokens_to_ids(c) for c in mapped]


def test_syllable_sent_byte_by_byte(tokenizer: PreTrainedTokenizerBase) -> None:
    ids = _byte_ids(tokenizer, "훈")
    assert len(ids) == 3
    decoder = IncrementalDecoder(tokenizer)
    assert [decoder.push(i) for i in ids] == ["", "", "훈"]


def test_dangling_partial_character_is_dropped_at_the_end(tokenizer: PreTrainedTokenizerBase) -> None:
    decoder = IncrementalDecoder(tokenizer)
    pieces = [decoder.push(i) for i in tokenizer("한")["input_ids"] + _byte_ids(tokenizer, "훈")[:2]]
    assert "".join(pieces) + decoder.flush() == "한"


def test_stop_sequence_is_held_back_and_cut() -> None:
    stops = StopMatcher(["\n### 명령어:"])
    out = [stops.push(t) for t in ["답입니다", ".\n", "###", " 명령", "어:", " 더"]]
    assert out[:2] == ["답입니다", "."]
    assert "".join(out) == "답입니다."
    assert stops.stopped


def test_text_that_only_looked_like_a_stop_is_released() -> None:
    stops = StopMatcher(["\n### 명령어:"])
    out = [stops.push(t) for t in ["가", "\n#", "# 제목"]]
    assert "".join(out) + stops.flush() == "가\n## 제목"
    assert not stops.stopped


def test_text_held_for_a_stop_is_released_on_the_closing_eos(tokenizer: PreTrainedTokenizerBase) -> None:
    from model_server.engine import TokenEvent
    from model_server.stream import StreamState
    from model_server.wire import FinishReason

    state = StreamState(tokenizer=tokenizer, prompt_ids=[], stops=["\n### 질문:"], input_length=3, seed=None)
    events = [state.accept(TokenEvent(id=i, logprob=-0.1, special=False)) for i in tokenizer("네.\n")["input_ids"]]
    eos = tokenizer.eos_token_id
    last = state.accept(TokenEvent(id=eos, logprob=-0.1, special=True, finish=FinishReason.eos_token))
    assert "".join(e.token.text for e in events) == "네."  # "\n" held: it may start the stop sequence
    assert last.token.text == "\n" and last.token.special is False
    assert last.generated_text == "네.\n"
    plain_eos = StreamState(tokenizer=tokenizer, prompt_ids=[], stops=[], input_length=1, seed=None)
    closing = plain_eos.accept(TokenEvent(id=eos, logprob=-0.1, special=True, finish=FinishReason.eos_token))
    assert closing.token.text == "" and closing.token.special is True
