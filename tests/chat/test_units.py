"""Pure parts of the chat: stop-sequence hold-back, trimming, event fan-out, Markdown sanitising."""

from __future__ import annotations

import asyncio
from typing import Any, cast

import pytest
from bson import ObjectId

from backend.chat.events import Position, StreamEvent, parse_event_id
from backend.chat.jobs import Job, JobRunner, JobTiming
from backend.chat.markdown import render_markdown
from backend.chat.prompt import Exchange, ModelLimits, build_prompt, render
from backend.chat.stop_filter import StopFilter
from backend.chat.turn import TurnOutcome
from backend.core.errors import AppError
from kovr.prompt import KULLM


def feed_all(stop_filter: StopFilter, pieces: list[str]) -> str:
    return "".join(stop_filter.feed(p) for p in pieces) + stop_filter.flush()


def test_stop_sequence_is_never_shown_even_split_across_tokens() -> None:
    pieces = ["답", "입니다.", "\n", "\n##", "# 명령", "어:\n다음"]
    assert feed_all(StopFilter(KULLM.stop), pieces) == "답입니다."


def test_text_that_only_looks_like_a_stop_start_is_released() -> None:
    stop_filter = StopFilter(KULLM.stop)
    assert stop_filter.feed("  첫 줄") == "첫 줄"  # leading whitespace of the answer dropped
    assert stop_filter.feed("\n") == ""  # could be the start of "\n### 명령어:"
    assert stop_filter.feed("둘째 줄") == "\n둘째 줄"
    assert stop_filter.feed("\n#") == ""
    assert stop_filter.flush() == "\n#"


async def _char_count(text: str) -> int:
    return len(text)


async def test_trimming_drops_oldest_whole_exchanges() -> None:
    history = [Exchange(f"질문 {i} " + "가" * 100, f"답 {i} " + "나" * 100) for i in range(10)]
    limits = ModelLimits(max_input_tokens=1000, max_total_tokens=1400)
    plan = await build_prompt(template=KULLM, history=history, question="마지막 질문", images=[], limits=limits,
                              max_new_tokens=200, count=_char_count)
    assert plan.input_tokens <= 1000
    assert plan.kept_exchanges + plan.dropped_exchanges == 10 and 0 < plan.kept_exchanges < 10
    kept = history[10 - plan.kept_exchanges:]
    assert plan.text == render(KULLM, kept, "마지막 질문", [])
    # One more exchange would not have fitted: the search keeps the longest suffix.
    longer = render(KULLM, history[10 - plan.kept_exchanges - 1:], "마지막 질문", [])
    assert len(longer) > 1000
    assert "질문 9" in plan.text and "질문 0" not in plan.text


async def test_a_history_that_fits_whole_costs_one_token_count() -> None:
    counted: list[str] = []

    async def count(text: str) -> int:
        counted.append(text)
        return len(text)

    history = [Exchange(f"질문 {i}", f"답 {i}") for i in range(12)]
    limits = ModelLimits(max_input_tokens=2000, max_total_tokens=2400)
    plan = await build_prompt(template=KULLM, history=history, question="마지막 질문", images=[], limits=limits,
                              max_new_tokens=200, count=count)
    assert (plan.kept_exchanges, plan.dropped_exchanges) == (12, 0)
    assert counted == [plan.text] and plan.text == render(KULLM, history, "마지막 질문", [])


async def test_trimming_counts_image_prefix_not_base64() -> None:
    image = "data:image/png;base64," + "A" * 5000
    limits = ModelLimits(max_input_tokens=400, max_total_tokens=600, image_prefix_tokens=64)
    plan = await build_prompt(template=KULLM, history=[], question="이 그림은?", images=[image], limits=limits,
                              max_new_tokens=100, count=_char_count)
    assert image in plan.text
    without_image = plan.text.replace(f"![]({image})", "")
    assert plan.input_tokens == len(without_image) + 64


async def test_newest_message_too_long_is_a_clear_error_before_the_model() -> None:
    limits = ModelLimits(max_input_tokens=100, max_total_tokens=200)
    with pytest.raises(AppError) as caught:
        await build_prompt(template=KULLM, history=[], question="가" * 500, images=[], limits=limits,
                           max_new_tokens=50, count=_char_count)
    assert caught.value.code == "prompt_too_long"
    assert "너무 길어" in caught.value.message("ko")


async def test_question_that_fits_only_without_full_answer_room_shortens_the_answer() -> None:
    limits = ModelLimits(max_input_tokens=150, max_total_tokens=200)
    plan = await build_prompt(template=KULLM, history=[Exchange("a", "b")], question="가" * 40, images=[],
                              limits=limits, max_new_tokens=150, count=_char_count)
    assert plan.max_new_tokens == 200 - plan.input_tokens and plan.kept_exchanges == 0


async def test_listeners_reattach_without_gaps_or_duplicates() -> None:
    job = Job(ObjectId(), ObjectId(), ObjectId(), attempt=0)
    first_seen: list[str] = []

    async def first_listener() -> None:
        async for event in job.listen(None):
            first_seen.append(event.data.get("text", ""))

    task = asyncio.create_task(first_listener())
    job.add_text("안녕")
    job.add_text("하세요")
    await asyncio.sleep(0)
    middle = parse_event_id(job.event_id())  # a client that saw everything so far, then dropped
    job.add_text(", 반갑")
    late = job.listen(middle)
    job.add_text("습니다.")
    job.finish(StreamEvent("done", {"message_id": "m"}, job.event_id()))
    resumed = [event async for event in late]
    fresh = [event async for event in job.listen(None)]
    await task

    assert "".join(e.data["text"] for e in resumed if e.event == "token") == ", 반갑습니다."
    assert "".join(e.data["text"] for e in fresh if e.event == "token") == "안녕하세요, 반갑습니다."
    assert resumed[-1].event == "done" and fresh[-1].event == "done"
    assert parse_event_id(resumed[-1].id) == Position(0, len("안녕하세요, 반갑습니다."))
    assert "".join(first_seen) == "안녕하세요, 반갑습니다."
    # An id from an earlier attempt (before a regenerate) replays from the start.
    assert Position(1, 3).resume_from(2, "abcdef") == 0


def test_saves_stretch_under_load_within_the_workers_budget_and_never_past_the_heartbeat() -> None:
    timing = JobTiming(save_interval_s=0.5, lease_s=8.0, saves_per_s=40.0)
    assert timing.save_interval(1) == 0.5  # a quiet worker saves as often as configured
    assert timing.save_interval(20) == 0.5
    assert timing.save_interval(60) == pytest.approx(1.5)  # 60 answers / 1.5 s = the 40 saves per second
    assert timing.save_interval(400) == timing.heartbeat_s == 2.0  # the lease is still renewed in time
    assert JobTiming(save_interval_s=0.5, lease_s=8.0).save_interval(400) == 0.5  # no budget: as configured
    assert JobTiming(save_interval_s=3.0, lease_s=8.0, saves_per_s=40.0).save_interval(1) == 3.0


@pytest.mark.parametrize("value", ["x-1", "1-", "-1", "1-2-3", "1" * 5000 + "-1", "١-٢", "0-" + "9" * 60])
def test_malformed_event_ids_are_refused_before_streaming(value: str) -> None:
    with pytest.raises(AppError) as caught:
        parse_event_id(value)
    assert caught.value.code == "invalid_event_id" and caught.value.status_code == 422


def test_markdown_is_rendered_and_sanitised() -> None:
    html = render_markdown(
        "**굵게** <script>alert(1)</script> <img src=x onerror=alert(1)>\n\n"
        "[링크](javascript:alert(1)) [좋은 링크](https://example.com) ![추적](https://evil.example/p.png)\n\n"
        "```python\nprint('안녕')\n```"
    )
    assert "<strong>굵게</strong>" in html
    assert "<script" not in html and "<img" not in html and "&lt;script&gt;" in html
    assert 'href="javascript' not in html
    assert '<a href="https://example.com" rel="noopener noreferrer nofollow">좋은 링크</a>' in html
    assert '<code class="language-python">' in html and "안녕" in html


async def test_a_cancelled_saver_stops_even_when_the_text_changes_at_that_moment() -> None:
    """Python 3.11's asyncio.wait_for returns instead of raising when the cancel lands in the same
    loop pass as the awaited future completing (CPython gh-86296). The saver of a finished answer
    is cancelled just as the last text arrives: with wait_for it lived on, renewing the lease of an
    answer that never ended (1 of 16 concurrent demo-model answers hung so, its conversation claimed)."""
    runner = JobRunner(db=cast(Any, None), model=cast(Any, None), worker_id="w",
                       timing=JobTiming(save_interval_s=60.0, lease_s=60.0))
    job = Job(ObjectId(), ObjectId(), ObjectId(), attempt=0)
    saver = asyncio.create_task(runner._save_loop(job, TurnOutcome()))
    await asyncio.sleep(0.05)  # the saver waits for text
    job.add_text("끝")
    saver.cancel()
    done, _ = await asyncio.wait({saver}, timeout=1.0)
    assert saver in done and saver.cancelled()
