"""Tiny real models for eval-chat's tests: two targets and a judge trained to answer in JSON.

- target A: tests.chat.support's tiny GPT-NeoX that memorised two Korean answers (KULLM template);
- target B: a random GPT-NeoX with the judge's tokenizer (untrained: its answers are noise);
- the judge: a tiny GPT-NeoX trained on eval-chat's own judge prompts (rendered the way KoVR's
  backend renders a /v1 user message: KULLM's template) to answer every absolute prompt with
  ``JUDGE_SCORES`` and every pairwise prompt with ``{"winner": "A"}`` — a real model with a real,
  total position bias, which the order swap must turn into ties.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

from evalchat.prompts import Item, load_prompt_set
from evalchat.rubric import RETRY_NOTE, absolute_prompt, pairwise_prompt
from kovr.prompt import KULLM
from tests.chat.support import QA

JUDGE_SCORES = {"understandability": 1, "naturalness": 2, "context": 2, "interestingness": 1, "instructions": 1,
                "overall": 3}
JUDGE_VERDICT = {"winner": "A"}
ITEMS = 4  # the first items of the shipped set that the tests use


def random_model(source: Path, folder: Path, seed: int = 1) -> None:
    """An untrained 2-layer GPT-NeoX with the tokenizer of ``source``."""
    import torch
    from transformers import AutoTokenizer, GPTNeoXConfig, GPTNeoXForCausalLM

    torch.manual_seed(seed)
    tokenizer = AutoTokenizer.from_pretrained(source)
    config = GPTNeoXConfig(
        vocab_size=len(tokenizer), hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
        intermediate_size=128, max_position_embeddings=2048, eos_token_id=tokenizer.eos_token_id,
        bos_token_id=tokenizer.eos_token_id,
    )
    GPTNeoXForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    KULLM.save(folder)


def _noise(rng: random.Random, length: int) -> str:
    pool = "가나다라마바사아자차카타파하는이가을를에서와과도만 abcxyz0123.,?!"
    return "".join(rng.choice(pool) for _ in range(length))


def _judge_examples(items: list[Item]) -> list[tuple[str, str]]:
    """(prompt, reply) pairs over many kinds of answers, so the reply does not hang on the answer."""
    rng = random.Random(0)
    out: list[tuple[str, str]] = []
    scores, verdict = json.dumps(JUDGE_SCORES), json.dumps(JUDGE_VERDICT)
    for item in items:
        answers = [item.reference, "", _noise(rng, 10), _noise(rng, 30), _noise(rng, 60), QA[0][1][:40], QA[1][1]]
        for answer in answers:
            out.append((KULLM.render(absolute_prompt(item, answer)), scores))
            out.append((KULLM.render(absolute_prompt(item, answer) + RETRY_NOTE), scores))
        for first, second in zip(answers, answers[1:] + answers[:1], strict=False):
            out.append((KULLM.render(pairwise_prompt(item, first, second)), verdict))
    return out


def train_judge(folder: Path, steps: int = 400) -> None:
    """A tiny GPT-NeoX whose answer (after KULLM's response marker) is the judge's JSON (~20 s on CPU)."""
    import torch
    from transformers import GPTNeoXConfig, GPTNeoXForCausalLM

    from kovr.modeling.bpe import train_byte_level_bpe

    torch.manual_seed(0)
    torch.set_num_threads(1)
    examples = _judge_examples(load_prompt_set()[:ITEMS + 2])
    tokenizer = train_byte_level_bpe([p + r for p, r in examples], vocab_size=1500)
    config = GPTNeoXConfig(
        vocab_size=len(tokenizer), hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
        intermediate_size=128, max_position_embeddings=2048, eos_token_id=tokenizer.eos_token_id,
        bos_token_id=tokenizer.eos_token_id, tie_word_embeddings=False,
    )
    model = GPTNeoXForCausalLM(config)
    batch = []
    for prompt, reply in examples:
        p_ids = tokenizer(prompt)["input_ids"]
        r_ids = tokenizer(reply + tokenizer.eos_token)["input_ids"]
        batch.append((torch.tensor([p_ids + r_ids]), torch.tensor([[-100] * len(p_ids) + r_ids])))
    optimizer = torch.optim.AdamW(model.parameters(), lr=4e-3)
    order = random.Random(1)
    for _ in range(steps):
        ids, labels = order.choice(batch)
        loss = model(input_ids=ids, labels=labels).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    KULLM.save(folder)
