"""The image matters: a fast version of bench/bench_vr.py, then the trained checkpoint served by
model_server answers an image question through the TGI API.

The threshold is one a model that ignores the image cannot pass: colour answers are balanced over
five colours (a blind guess gets about 20-25%), so 40% on ~100 held-out questions is more than three
standard deviations above any guess; the text-only baseline trained the same way is checked too.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

from finetune.vr.proof import ProofSize, run_proof

pytestmark = pytest.mark.slow

# Colour questions only, to keep it to a few minutes on CPU (the bench runs every type).
SMALL = ProofSize(scenes=1000, pretrain_steps=250, stage1_steps=100, stage2_steps=700, eval_max=300,
                  types=("colour",))
COLOUR_THRESHOLD = 0.40


@pytest.fixture(scope="module")
def proof(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, dict[str, Any]]]:
    torch.set_num_threads(1)
    workdir = tmp_path_factory.mktemp("proof")
    yield workdir, run_proof(workdir, SMALL)


def test_align_model_beats_the_text_only_baseline(proof: tuple[Path, dict[str, Any]]) -> None:
    _, results = proof
    align, text = results["align"]["by_type"], results["text_only"]["by_type"]
    assert align["colour"]["n"] >= 60
    assert align["colour"]["accuracy"] >= COLOUR_THRESHOLD, align
    assert text["colour"]["accuracy"] < COLOUR_THRESHOLD, text
    assert results["align"]["overall"]["accuracy"] > results["text_only"]["overall"]["accuracy"] + 0.05


async def test_served_checkpoint_answers_an_image_question(proof: tuple[Path, dict[str, Any]]) -> None:
    from text_generation import AsyncClient

    from finetune.vr.data import instruction_text, load_vqa
    from kovr.prompt import KULLM
    from kovr.settings import load_settings
    from model_server.align import encode_data_uri
    from finetune.vr.model import load_image
    from tests.model_server.conftest import model_server

    workdir, _ = proof
    settings = load_settings(vr_checkpoint=str(workdir / "align" / "align"), data_dir=workdir / "srv",
                             device="cpu", torch_threads=1, max_input_tokens=300, max_total_tokens=400)
    questions = [r for r in load_vqa(workdir / "data" / "test_vqa.jsonl") if r.type == "colour"][:40]
    with model_server(settings) as url:
        client = AsyncClient(url, timeout=120)
        answers = []
        for record in questions:
            uri = encode_data_uri(load_image(record.image))
            prompt = KULLM.render(instruction_text(record, uri))
            response = await client.generate(prompt, max_new_tokens=6, stop_sequences=list(KULLM.stop))
            answers.append(response.generated_text.strip())
    correct = sum(a == r.output for a, r in zip(answers, questions, strict=True))
    assert all(answers), answers
    assert correct / len(questions) >= COLOUR_THRESHOLD - 0.1, list(zip(answers, [r.output for r in questions]))
