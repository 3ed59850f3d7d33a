"""The static slot cache (and its CUDA-graph buckets) decodes what `generate` gives each sequence alone."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
import torch
from transformers import GPTNeoXConfig, GPTNeoXForCausalLM

from model_server.batch import prefill, prefill_batch
from model_server.engine import Engine, ErrorEvent, Event, Job, TokenEvent
from model_server.graphs import DecodeGraphs, capture_decode_graphs
from model_server.loading import load_model
from model_server.sampling import SamplingParams
from model_server.slots import SlotCache, batch_buckets, bucket, width_buckets
from tests.model_server.conftest import model_settings

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def _model(attn: str = "sdpa", device: str = "cpu", dtype: torch.dtype = torch.float32) -> GPTNeoXForCausalLM:
    torch.manual_seed(0)
    config = GPTNeoXConfig(
        vocab_size=300, hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128,
        max_position_embeddings=256, attn_implementation=attn,
    )
    model = GPTNeoXForCausalLM(config)
    model.to(device=device, dtype=dtype)  # type: ignore[call-arg]  # transformers' `to` wrapper confuses mypy
    return model.eval()


def _alone(model: GPTNeoXForCausalLM, prompt: list[int] | torch.Tensor, n: int) -> list[int]:
    """Greedy tokens of `generate` for one prompt: ids, or embeddings [T, H] (generate then returns only new tokens)."""
    if isinstance(prompt, torch.Tensor):
        embeds = prompt[None]
        mask = torch.ones(embeds.shape[:2], dtype=torch.long, device=embeds.device)
        out = model.generate(inputs_embeds=embeds, attention_mask=mask, max_new_tokens=n, min_new_tokens=n,
                             do_sample=False, pad_token_id=0)
        return out[0].tolist()
    ids = torch.tensor([prompt], device=model.device)
    out = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=n, min_new_tokens=n, do_sample=False,
                         pad_token_id=0)
    return out[0, len(prompt):].tolist()


def _image_prompt(model: GPTNeoXForCausalLM, seed: int, n_image: int, text: list[int]) -> torch.Tensor:
    """An 'image prefix' (random vectors at the embeddings' scale) spliced before text token embeddings."""
    table = model.get_input_embeddings()
    assert isinstance(table, torch.nn.Embedding)
    generator = torch.Generator().manual_seed(seed)
    prefix = torch.randn(n_image, table.weight.shape[1], generator=generator) * table.weight.std().item()
    return torch.cat([prefix.to(table.weight), table(torch.tensor(text, device=table.weight.device))])


def test_buckets() -> None:
    assert [bucket([1, 2, 4, 8], n) for n in (1, 2, 3, 5, 8, 9)] == [1, 2, 4, 8, 8, None]
    assert batch_buckets([1, 2, 4, 8, 16, 32, 64], 12) == [1, 2, 4, 8, 12]
    assert batch_buckets([1, 2, 4, 8, 16, 32, 64], 64) == [1, 2, 4, 8, 16, 32, 64]
    assert width_buckets(2048) == [256, 512, 1024, 2048]
    assert width_buckets(400) == [256, 400] and width_buckets(100) == [100]
    graphs = DecodeGraphs([1, 2, 4], [16, 64])
    graphs.rehearse(lambda b, w: torch.zeros(b, 1, w))
    assert graphs.pick(3, 17) == (4, 64) and graphs.pick(1, 16) == (1, 16)
    assert graphs.pick(5, 10) is None and graphs.pick(1, 65) is None  # not captured: eager
    assert graphs.replay((4, 64)).shape == (4, 1, 64)


@pytest.mark.parametrize(("attn", "graphs"), [("sdpa", False), ("eager", False), ("sdpa", True)])
def test_rows_joining_and_leaving_match_generate_alone(attn: str, graphs: bool) -> None:
    """Rows join into free slots, leave from the middle (a dummy row stays in range), slots are reused."""
    torch.set_num_threads(1)
    model = _model(attn)
    prompts = [[5, 6, 7, 8, 9, 10, 11], [100, 50], [42, 43, 44], [7] * 12, [200, 201]]
    cache = SlotCache(model, slots=4, max_len=128)
    if graphs:  # every step padded up to a (batch, width) bucket, as CUDA graphs replay it
        cache.graphs = DecodeGraphs([1, 2, 4], [16, 32, 64, 128])
        cache.graphs.rehearse(lambda b, w: cache.forward(model, b, w))
    got: dict[int, list[int]] = {}
    order: list[int] = []  # prompt index of each row

    def join(*indices: int) -> None:
        results = prefill_batch(model, [torch.tensor(prompts[i]) for i in indices])
        cache.add(*results)
        for i, result in zip(indices, results, strict=True):
            got[i] = [int(result.last_logits.argmax())]
            order.append(i)

    def steps(n: int) -> None:
        for _ in range(n):
            logits = cache.step(model, [got[i][-1] for i in order])
            for row, i in enumerate(order):
                got[i].append(int(logits[row].argmax()))

    with torch.inference_mode():
        join(0)
        steps(3)
        join(1, 2)
        steps(20)
        cache.keep([0, 2])  # prompt 1 leaves from slot 1: slot 2 stays busy, slot 1 is a dummy row
        del order[1]
        assert cache.row_slots == [0, 2]
        steps(5)
        join(3)  # takes the lowest free slot (1), where prompt 1's longer cache was
        assert cache.row_slots == [0, 2, 1]
        steps(40)
        cache.keep([1, 2])
        del order[0]
        join(4)  # slot 0, after prompt 0's 69 columns: zeroed beyond the new prompt
        steps(10)
    lengths = {0: 69, 1: 21, 2: 76, 3: 51, 4: 11}
    for i, n in lengths.items():
        assert got[i] == _alone(model, prompts[i], n), i


def test_image_prompts_prefilled_with_text_match_generate_alone() -> None:
    """Prompts with an image prefix (embeddings) prefill in one pass with text prompts and share the decode."""
    torch.set_num_threads(1)
    model = _model()
    with torch.inference_mode():
        prompts: list[list[int] | torch.Tensor] = [
            [5, 6, 7], _image_prompt(model, 1, 8, [10, 11, 12]), [100, 50, 40, 30, 20, 10],
            _image_prompt(model, 2, 4, [99]),
        ]
        inputs = [p if isinstance(p, torch.Tensor) else torch.tensor(p) for p in prompts]
        together = prefill_batch(model, inputs)
        for prompt, result in zip(inputs, together, strict=True):
            alone = prefill(model, inputs_embeds=prompt) if prompt.dim() == 2 else prefill(model, prompt)
            assert result.length == prompt.shape[0]
            assert torch.allclose(result.last_logits, alone.last_logits, atol=1e-5)
        cache = SlotCache(model, slots=4, max_len=64)
        cache.add(*together)
        got = [[int(r.last_logits.argmax())] for r in together]
        for _ in range(25):
            logits = cache.step(model, [g[-1] for g in got])
            for row in range(len(prompts)):
                got[row].append(int(logits[row].argmax()))
    for given, tokens in zip(prompts, got, strict=True):
        assert tokens == _alone(model, given, 26)


@pytest.fixture(scope="module")
def loaded(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    return load_model(model_settings(tiny_model_dir, tmp_path_factory.mktemp("slots")))


def _run_engine(engine: Engine, jobs: list[tuple[list[int] | torch.Tensor, int]]) -> list[list[int]]:
    """Submit all jobs at once; returns each one's tokens."""
    tokens: list[list[int]] = [[] for _ in jobs]
    done = [threading.Event() for _ in jobs]

    def sink(i: int):
        def emit(event: Event) -> None:
            if isinstance(event, ErrorEvent):
                tokens[i].append(-1)
                done[i].set()
            elif isinstance(event, TokenEvent):
                tokens[i].append(event.id)
                if event.finish is not None:
                    done[i].set()
        return emit

    engine.start()
    try:
        for i, (prompt, n) in enumerate(jobs):
            embeds = prompt if isinstance(prompt, torch.Tensor) else None
            ids = [] if embeds is not None else list(prompt)
            engine.submit(Job(prompt_ids=ids, params=SamplingParams(), max_new_tokens=n, emit=sink(i),
                              prompt_embeds=embeds))
        for event in done:
            assert event.wait(60)
    finally:
        engine.close()
    return tokens


@pytest.mark.parametrize("kv_cache", ["dynamic", "static"])
def test_engine_batches_text_and_image_prompts_like_generate(kv_cache: str, loaded) -> None:
    """Through the engine: 2 slots, 5 mixed jobs of different lengths, so rows join and leave as others end."""
    torch.set_num_threads(1)
    model = loaded.model
    with torch.inference_mode():
        image = _image_prompt(model, 3, 16, [20, 21, 22, 23])
    jobs: list[tuple[list[int] | torch.Tensor, int]] = [
        ([5, 6, 7, 8], 30), (image, 12), ([40, 41], 20), ([100, 101, 102, 103, 104, 105], 8), (image[4:], 15),
    ]
    engine = Engine(loaded, slots=2, max_queue=8, prefills_per_step=4, threads=1, ignore_eos=True,
                    kv_cache=kv_cache, max_total_tokens=100)  # type: ignore[arg-type]
    got = _run_engine(engine, jobs)
    assert engine.kv_cache == kv_cache
    for (prompt, n), tokens in zip(jobs, got, strict=True):  # EOS banned on both sides (min_new_tokens)
        assert tokens == _alone(model, prompt, n)


# --- GPU: the recorded graphs themselves ----------------------------------------------------------
@pytest.mark.gpu
@cuda
def test_cuda_graph_decode_matches_generate_fp32() -> None:
    """Captured graphs (fp32, no TF32) replay steps that give generate's tokens, rows joining and leaving."""
    model = _model(device="cuda")
    prompts = [[5, 6, 7, 8, 9, 10, 11], [100, 50], [42, 43, 44], [7] * 12]
    with torch.inference_mode():
        cache = SlotCache(model, slots=4, max_len=256)
        graphs = capture_decode_graphs(cache, model, [1, 2, 4])
        assert graphs is not None and graphs.captured == [(b, w) for b in (1, 2, 4) for w in (256,)]
        results = prefill_batch(model, [torch.tensor(p, device="cuda") for p in prompts[:3]])
        cache.add(*results)
        got = [[int(r.last_logits.argmax())] for r in results]
        order = [0, 1, 2]
        for step in range(60):
            if step == 20:
                cache.keep([0, 2])
                order = [0, 2]
                result = prefill(model, torch.tensor(prompts[3], device="cuda"))
                cache.add(result)
                got.append([int(result.last_logits.argmax())])
                order.append(3)
            logits = cache.step(model, [got[i][-1] for i in order])
            for row, i in enumerate(order):
                got[i].append(int(logits[row].argmax()))
    assert got[0] == _alone(model, prompts[0], 61)
    assert got[1] == _alone(model, prompts[1], 21)
    assert got[2] == _alone(model, prompts[2], 61)
    assert got[3] == _alone(model, prompts[3], 41)


@pytest.mark.gpu
@cuda
def test_cuda_graph_replay_matches_eager_step_bf16() -> None:
    """In bf16 a replayed step (padded to 4 rows x 256 columns) gives the eager step's logits within bf16 rounding."""
    model = _model(device="cuda", dtype=torch.bfloat16)
    prompts = [[5, 6, 7, 8, 9, 10, 11], [100, 50], [42, 43, 44]]
    with torch.inference_mode():
        caches = []
        for graphs in (False, True):
            cache = SlotCache(model, slots=4, max_len=256)
            if graphs:
                assert capture_decode_graphs(cache, model, [4]) is not None
            cache.add(*prefill_batch(model, [torch.tensor(p, device="cuda") for p in prompts]))
            caches.append(cache)
        tokens = [1, 2, 3]
        for _ in range(10):
            eager, replayed = caches[0].step(model, tokens), caches[1].step(model, tokens)
            assert torch.allclose(eager, replayed, atol=2e-2, rtol=2e-2)
            tokens = eager.argmax(-1).tolist()


def test_auto_kv_cache_is_static_on_cuda_only(loaded, tmp_path: Path) -> None:
    from model_server.build import kv_cache_kind

    settings = model_settings(Path(loaded.model_id), tmp_path)
    assert settings.kv_cache == "auto" and kv_cache_kind(settings, loaded) == "dynamic"
    assert kv_cache_kind(settings.model_copy(update={"kv_cache": "static"}), loaded) == "static"
    on_gpu = type(loaded)(**{**loaded.__dict__, "device": torch.device("cuda")})
    assert kv_cache_kind(settings, on_gpu) == "static"


async def test_server_on_the_static_cache_answers_as_the_dynamic_one(
    tiny_model_dir: Path, server_url: str, tmp_path: Path,
) -> None:
    """A real server with KOVR_KV_CACHE=static, 4 concurrent streams: the same text as the default (dynamic) server."""
    import asyncio

    from text_generation import AsyncClient

    from tests.model_server.conftest import PROMPT, model_server

    prompts = [PROMPT, "hello world", PROMPT + "안녕", "질문"]

    async def answers(url: str) -> list[str]:
        client = AsyncClient(url, timeout=60)
        done = await asyncio.gather(*(client.generate(p, max_new_tokens=20 + 5 * i) for i, p in enumerate(prompts)))
        return [r.generated_text for r in done]

    with model_server(model_settings(tiny_model_dir, tmp_path, kv_cache="static")) as url:
        static = await answers(url)
    assert static == await answers(server_url)


@pytest.mark.gpu
@cuda
def test_engine_captures_graphs_on_cuda_and_decodes_like_generate(loaded) -> None:
    """The engine's own path on CUDA (fp32 copy of the tiny model): graphs captured at start, text jobs as generate."""
    import copy

    on_gpu = type(loaded)(**{**loaded.__dict__, "model": copy.deepcopy(loaded.model).to("cuda"),
                             "device": torch.device("cuda")})
    jobs: list[tuple[list[int] | torch.Tensor, int]] = [([5, 6, 7, 8], 30), ([40, 41], 20), ([100, 101, 102], 8)]
    engine = Engine(on_gpu, slots=2, max_queue=8, prefills_per_step=4, threads=1, ignore_eos=True,
                    kv_cache="static", max_total_tokens=100, graph_batch_sizes=[1, 2])
    got = _run_engine(engine, jobs)
    assert isinstance(engine._batch, SlotCache) and engine._batch.graphs is not None
    assert engine._batch.graphs.captured == [(1, 100), (2, 100)]
    for (prompt, n), tokens in zip(jobs, got, strict=True):
        assert tokens == _alone(loaded.model, prompt, n)
