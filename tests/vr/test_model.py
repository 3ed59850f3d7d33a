"""Prefix splicing inside training inputs, answer-only loss, and batched greedy answers."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from PIL import Image

from finetune.finetune_config import TinyModelSection
from finetune.modeling import tiny_model, train_tokenizer
from finetune.vr.build import make_tiny_align_model
from finetune.vr.data import IGNORE, VRRecord, encode, encode_many, encode_prompt, instruction_text
from finetune.vr.vr_model import VRModel, generate, loss_sum
from kovr.modeling.image_prompt import split_prompt
from kovr.prompt import KULLM


@pytest.fixture(scope="module")
def parts(tmp_path_factory: pytest.TempPathFactory) -> tuple[VRModel, object, list[VRRecord]]:
    torch.set_num_threads(1)
    folder = tmp_path_factory.mktemp("imgs")
    records = []
    for i, colour in enumerate([(220, 40, 40), (40, 80, 230), (40, 170, 60)]):
        path = folder / f"{i}.png"
        Image.new("RGB", (32, 32), colour).save(path)
        records.append(VRRecord(f"r{i}", str(path), "무슨 색인가요?" + " 네" * i, ["빨간색", "파란색", "초록색"][i]))
    records.append(VRRecord("t", None, "안녕하세요?", "반갑습니다."))
    texts = [KULLM.render(r.instruction) + r.output for r in records] * 5
    tokenizer = train_tokenizer(texts, 300)
    lm = tiny_model(TinyModelSection(hidden_size=32, num_heads=2, intermediate_size=64), tokenizer, 256, 0)
    align = make_tiny_align_model(32, image_size=32, patch_size=16)
    return VRModel(align, lm.eval(), feature_cache=10), tokenizer, records


def test_prefix_sits_at_the_image_and_carries_no_loss(parts: tuple) -> None:
    model, tokenizer, records = parts
    item = encode(records[0], tokenizer, KULLM, True, 512, model.align.num_prefix_tokens)
    assert item is not None and item.image == records[0].image
    embeds, mask, labels = model.build_inputs([item])
    n = model.align.num_prefix_tokens
    assert embeds.shape[1] == len(item.input_ids) + n and mask.all()
    prefix = model.prefixes([item.image])[0]
    assert torch.allclose(embeds[0, item.image_pos:item.image_pos + n], prefix)
    assert (labels[0, item.image_pos:item.image_pos + n] == IGNORE).all()
    answer = [t for t in labels[0].tolist() if t != IGNORE]
    assert answer[:-1] == tokenizer("빨간색", add_special_tokens=False)["input_ids"]
    loss, count = loss_sum(model, [item])
    assert count == len(answer) and loss.item() > 0


def test_text_only_records_and_baseline_get_no_prefix(parts: tuple) -> None:
    model, tokenizer, records = parts
    text = encode(records[3], tokenizer, KULLM, True, 512, 4)
    blind = encode(records[0], tokenizer, KULLM, False, 512, 4)
    assert text is not None and text.image is None
    assert blind is not None and blind.image is None
    embeds, _, _ = model.build_inputs([blind])
    assert embeds.shape[1] == len(blind.input_ids)


def test_too_long_examples_are_dropped(parts: tuple) -> None:
    model, tokenizer, records = parts
    assert encode(records[0], tokenizer, KULLM, True, 60, model.align.num_prefix_tokens) is None


def test_batched_encoding_equals_one_record_at_a_time(parts: tuple) -> None:
    model, tokenizer, records = parts
    n = model.align.num_prefix_tokens
    many = [*records, *records[:2], VRRecord("long", records[0].image, "질문 " * 80, "답")]
    batched = encode_many(many, tokenizer, KULLM, True, 128, n)
    assert batched == [encode(r, tokenizer, KULLM, True, 128, n) for r in many]
    first = batched[0]
    assert batched[-1] is None and batched[4] == first and batched[3] is not None and batched[3].image is None
    assert first is not None
    before, _, after = split_prompt(KULLM.render(instruction_text(records[0], "image")))
    ids = [tokenizer(part, add_special_tokens=False)["input_ids"] for part in (before, after, "빨간색")]
    assert first.input_ids == ids[0] + ids[1] + ids[2] + [tokenizer.eos_token_id]
    assert first.image_pos == len(ids[0])



def test_batches_split_at_the_chunk_size_keep_every_record_in_order(parts: tuple,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    model, tokenizer, records = parts
    n = model.align.num_prefix_tokens
    whole = encode_many(records, tokenizer, KULLM, True, 128, n)
    monkeypatch.setattr("finetune.vr.data.ENCODE_CHUNK", 2)
    assert len(records) > 2 and encode_many(records, tokenizer, KULLM, True, 128, n) == whole


def test_batched_answers_equal_single_answers(parts: tuple) -> None:
    model, tokenizer, records = parts
    prompts = [encode_prompt(r, tokenizer, KULLM, True) for r in records]
    batched = generate(model, prompts, tokenizer, max_new_tokens=5)
    single = [generate(model, [p], tokenizer, max_new_tokens=5)[0] for p in prompts]
    assert batched == single


def test_feature_cache_is_bounded_and_consistent(parts: tuple, tmp_path: Path) -> None:
    model, _, records = parts
    refs = [r.image for r in records[:3]]
    first = model.features(refs)
    model._cache_size = 2
    again = model.features(refs)
    assert torch.equal(first, again) and len(model._cache) == 2


def test_tiny_lm_layout_follows_the_config(parts: tuple) -> None:
    """Polyglot-ko's parallel residual by default; sequential (an MLP after each attention) on request."""
    _, tokenizer, _ = parts
    section = TinyModelSection(hidden_size=32, num_heads=2, intermediate_size=64)
    assert tiny_model(section, tokenizer, 64, 0).config.use_parallel_residual is True
    sequential = tiny_model(section.model_copy(update={"parallel_residual": False}), tokenizer, 64, 0)
    assert sequential.config.use_parallel_residual is False
    ids = torch.tensor([[1, 2, 3]])
    parallel_out = tiny_model(section, tokenizer, 64, 0)(ids).logits
    assert not torch.allclose(parallel_out, sequential(ids).logits)  # same weights, other wiring


def test_answers_are_generated_long_enough_for_the_longest_reference(parts: tuple) -> None:
    """A reasoned answer runs past a fixed 32-token cap with a byte-level tokenizer; the budget follows it."""
    from finetune.vr.evaluate import answer_budget, predict

    model, tokenizer, records = parts
    long_answer = "초록색 네모가 더 왼쪽에 있으므로 아니요"
    tokens = len(tokenizer(long_answer, add_special_tokens=False)["input_ids"])
    assert tokens > 32  # the cap that cut "아니요" to "아니"
    reasoned = VRRecord("long", records[0].image, "파란 세모는 초록색 네모의 왼쪽에 있나요?", long_answer)
    assert answer_budget([*records, reasoned], tokenizer) == tokens + 8
    assert answer_budget(records[:3], tokenizer) < tokens
    # This untrained model does not stop at EOS here, so its answer runs to the budget.
    (answer,) = predict(model, tokenizer, KULLM, [reasoned], use_images=True)
    assert len(tokenizer(answer.answer, add_special_tokens=False)["input_ids"]) >= tokens
