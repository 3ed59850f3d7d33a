"""Usage (backend/db/usage.py, backend/services/usage.py): the model server's counts of a real
answer recorded on the user's UTC day, `GET /api/v1/users/me/usage`, and the settings page's
server-drawn SVG chart."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator

import httpx
import pytest
from bson import ObjectId

from backend.schemas.usage import QuotaPublic, UsageDay, UsagePublic, UsageTotals
from backend.web import usage_chart
from tests.backend.usage_support import Stack, send, stack
from tests.chat.fixtures import model_url, stream_knobs, tiny_chat_model  # noqa: F401


@pytest.fixture(scope="module")
def usage_stack(mongo_uri: str, model_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:  # noqa: F811
    with stack(mongo_uri, model_url, tmp_path_factory.mktemp("usage"), quota_tokens_per_day=100_000) as running:
        yield running


def test_a_real_answer_is_recorded_on_the_users_day(usage_stack: Stack) -> None:
    account = usage_stack.account()
    conversation = account.conversation()
    assert send(account, conversation).status_code == 200
    assert send(account, conversation, "안녕하세요? 자기소개를 해 주세요.").status_code == 200
    answers = [m for m in account.messages(conversation) if m["role"] == "assistant"]
    day = usage_stack.db.usage_daily.find_one({"user_id": ObjectId(account.user_id)})
    assert day["day"] == dt.datetime.now(dt.UTC).strftime("%Y-%m-%d") and day["messages"] == 2
    assert day["generated_tokens"] == sum(a["generated_tokens"] for a in answers) > 0
    stored = list(usage_stack.db.messages.find({"conversation_id": ObjectId(conversation), "role": "assistant"}))
    assert day["prompt_tokens"] == sum(m["prompt_tokens"] for m in stored) > 0
    assert day["counted_tokens"] == day["generated_tokens"]  # the reservations were settled


def test_get_my_usage(usage_stack: Stack) -> None:
    account = usage_stack.account()
    assert send(account, account.conversation()).status_code == 200
    body = account.client.get("/api/v1/users/me/usage").json()
    assert len(body["days"]) == 30 and body["days"][-1]["day"] == dt.datetime.now(dt.UTC).date().isoformat()
    today = body["days"][-1]
    assert today["messages"] == 1 and today["generated_tokens"] > 0 and today["prompt_tokens"] > 0
    assert all(d["messages"] == 0 for d in body["days"][:-1])
    assert body["month"]["generated_tokens"] == today["generated_tokens"]
    quota = body["quota"]
    assert quota["tokens_per_day"] == 100_000 and quota["messages_per_day"] == 0 and quota["messages_today"] == 1
    assert quota["resets_at"].startswith((dt.datetime.now(dt.UTC).date() + dt.timedelta(days=1)).isoformat())
    with httpx.Client(base_url=usage_stack.url) as anonymous:
        assert anonymous.get("/api/v1/users/me/usage").status_code == 401


def test_settings_page_draws_the_usage_chart(usage_stack: Stack) -> None:
    account = usage_stack.account()
    assert send(account, account.conversation()).status_code == 200
    with httpx.Client(base_url=usage_stack.url, timeout=30) as browser:
        browser.get("/login")
        browser.post("/login", data={"csrf_token": browser.cookies["kovr_csrf"], "email": account.email,
                                     "password": account.password})
        html = browser.get("/settings").text
    svg = re.search(r"<svg viewBox=\"0 0 600 180\"[^>]*role=\"img\".*?</svg>", html, re.S)
    assert svg is not None
    assert '<title id="usage-title">최근 30일 일별 생성 토큰</title>' in svg.group(0)
    assert "최근 30일 동안" in svg.group(0)  # the <desc>
    assert svg.group(0).count("<rect") == 30
    assert "이번 달 합계" in html and "한국 시간" in html and "100,000" in html


def _report(tokens: list[int]) -> UsagePublic:
    start = dt.date(2026, 11, 8)
    days = [UsageDay(day=start + dt.timedelta(days=i), messages=1 if t else 0, generated_tokens=t, prompt_tokens=2 * t)
            for i, t in enumerate(tokens)]
    quota = QuotaPublic(messages_per_day=0, tokens_per_day=0, messages_today=0, tokens_today=0,
                        resets_at=dt.datetime(2026, 12, 8, tzinfo=dt.UTC))
    return UsagePublic(days=days, month=UsageTotals(), quota=quota)


def test_chart_bars_scale_to_the_busiest_day() -> None:
    chart = usage_chart.build(_report([0] * 28 + [50, 100]), "ko")
    assert [round(b.height) for b in chart.bars[-2:]] == [71, 142] and chart.bars[0].height == 0
    assert chart.peak == 100 and chart.first_day == "11월 8일" and chart.last_day == "12월 7일"
    assert chart.bars[-1].label == "12월 7일: 메시지 1개, 생성 토큰 100개, 입력 토큰 200개"
    assert "가장 많은 날은 12월 7일(100개)" in chart.summary
    empty = usage_chart.build(_report([0] * 30), "en")
    assert all(b.height == 0 for b in empty.bars) and "Generated tokens per day" in empty.summary
    assert usage_chart.reset_text(_report([0] * 30), "ko") == "2026-12-08 09:00 (한국 시간)"
