"""Daily quotas (backend/services/quota.py): 429 quota_exceeded in Korean saying when the day
resets, the OpenAI error shape on /v1/chat/completions, no overshoot under concurrent sends,
and a user's own limits set on the user document."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from bson import ObjectId

from backend.db.usage import Limits
from backend.services.quota import limits_for, over_quota
from kovr.settings import load_settings
from tests.backend.usage_support import Stack, send, stack
from tests.chat.fixtures import model_url, stream_knobs, tiny_chat_model  # noqa: F401

MESSAGES_PER_DAY = 3


@pytest.fixture(scope="module")
def quota_stack(mongo_uri: str, model_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:  # noqa: F811
    with stack(mongo_uri, model_url, tmp_path_factory.mktemp("quota"), quota_messages_per_day=MESSAGES_PER_DAY,
               chat_default_max_new_tokens=16) as running:
        yield running


def _next_midnight() -> dt.datetime:
    today = dt.datetime.now(dt.UTC).date()
    return dt.datetime.combine(today + dt.timedelta(days=1), dt.time(), tzinfo=dt.UTC)


def test_over_quota_is_429_in_korean_saying_when_it_resets(quota_stack: Stack) -> None:
    account = quota_stack.account()
    conversation = account.conversation()
    for _ in range(MESSAGES_PER_DAY):
        assert send(account, conversation).status_code == 200
    refused = send(account, conversation)
    assert refused.status_code == 429
    error = refused.json()["error"]
    reset = _next_midnight()
    kst = (reset + dt.timedelta(hours=9)).strftime("%Y-%m-%d %H:%M")
    assert error["code"] == "quota_exceeded"
    assert "한도" in error["message"] and "초기화" in error["message"]
    assert kst in error["message"] and reset.strftime("%Y-%m-%d 00:00 UTC") in error["message"]
    assert 0 < int(refused.headers["Retry-After"]) <= 86400
    english = account.client.post(f"/api/v1/conversations/{conversation}/messages",
                                  json={"content": "hi"}, headers={"Accept-Language": "en"})
    assert english.status_code == 429 and "resets at" in english.json()["error"]["message"]
    # The refused message was not kept, and the conversation is free for the next day.
    assert len(account.messages(conversation)) == 2 * MESSAGES_PER_DAY
    usage = account.client.get("/api/v1/users/me/usage").json()
    assert usage["quota"]["messages_today"] == MESSAGES_PER_DAY and usage["quota"]["messages_per_day"] == 3


def test_regenerate_counts_against_the_quota(quota_stack: Stack) -> None:
    account = quota_stack.account()
    conversation = account.conversation()
    for _ in range(MESSAGES_PER_DAY):
        assert send(account, conversation).status_code == 200
    answer = account.messages(conversation)[-1]["id"]
    refused = account.client.post(f"/api/v1/messages/{answer}/regenerate", json={})
    assert refused.status_code == 429 and refused.json()["error"]["code"] == "quota_exceeded"


def test_openai_completions_get_the_openai_error_shape(quota_stack: Stack) -> None:
    account = quota_stack.account()
    with quota_stack.token_client(quota_stack.api_token(account)) as program:
        body = {"model": "kovr", "temperature": 0, "max_tokens": 8,
                "messages": [{"role": "user", "content": "안녕하세요? 자기소개를 해 주세요."}]}
        for _ in range(MESSAGES_PER_DAY):
            done = program.post("/v1/chat/completions", json=body)
            assert done.status_code == 200, done.text
        refused = program.post("/v1/chat/completions", json={**body, "stream": True})
    assert refused.status_code == 429
    error = refused.json()["error"]
    assert error["code"] == "quota_exceeded" and error["type"] == "insufficient_quota"
    assert error["param"] is None and "초기화" in error["message"]
    day = quota_stack.db.usage_daily.find_one({"user_id": ObjectId(account.user_id)})
    assert day["messages"] == MESSAGES_PER_DAY and day["generated_tokens"] > 0 and day["prompt_tokens"] > 0
    assert day["counted_tokens"] == day["generated_tokens"]  # every reservation settled to what was made


def _send_concurrently(stack_: Stack, count: int) -> tuple[str, list[int]]:
    account = stack_.account()
    conversations = [account.conversation() for _ in range(count)]  # one answer at a time per conversation
    with ThreadPoolExecutor(count) as pool:
        statuses = list(pool.map(lambda c: send(account, c).status_code, conversations))
    return account.user_id, statuses


def test_concurrent_sends_cannot_overshoot_the_message_quota(quota_stack: Stack) -> None:
    user_id, statuses = _send_concurrently(quota_stack, 8)
    assert sorted(statuses) == [200] * MESSAGES_PER_DAY + [429] * (8 - MESSAGES_PER_DAY)
    day = quota_stack.db.usage_daily.find_one({"user_id": ObjectId(user_id)})
    assert day["messages"] == MESSAGES_PER_DAY


def test_concurrent_sends_overshoot_the_token_quota_by_at_most_one_answer(quota_stack: Stack) -> None:
    """A user's own token limit of 5 with answers of up to 12 tokens: of 6 sends at once exactly
    one starts (it reserved 12 and so took the day over the limit); the rest get 429."""
    probe = quota_stack.account()
    quota_stack.db.users.update_one({"_id": ObjectId(probe.user_id)},
                                    {"$set": {"quota_tokens_per_day": 5, "quota_messages_per_day": 0}})
    conversations = [probe.conversation() for _ in range(6)]
    with ThreadPoolExecutor(6) as pool:
        statuses = list(pool.map(lambda c: send(probe, c, max_new_tokens=12).status_code, conversations))
    assert sorted(statuses) == [200] + [429] * 5
    day = quota_stack.db.usage_daily.find_one({"user_id": ObjectId(probe.user_id)})
    assert day["messages"] == 1 and day["generated_tokens"] <= 12


def test_a_users_own_limit_wins_over_the_default(quota_stack: Stack) -> None:
    unlimited = quota_stack.account()
    quota_stack.db.users.update_one({"_id": ObjectId(unlimited.user_id)}, {"$set": {"quota_messages_per_day": 0}})
    conversation = unlimited.conversation()
    for _ in range(MESSAGES_PER_DAY + 1):
        assert send(unlimited, conversation).status_code == 200
    stricter = quota_stack.account()
    quota_stack.db.users.update_one({"_id": ObjectId(stricter.user_id)}, {"$set": {"quota_messages_per_day": 1}})
    conversation = stricter.conversation()
    assert send(stricter, conversation).status_code == 200
    assert send(stricter, conversation).status_code == 429


def test_zero_means_unlimited(tmp_path: Path) -> None:
    """0 means unlimited for both settings (the default); a user's own value wins where set."""
    settings = load_settings(data_dir=tmp_path)
    assert limits_for(settings, {}) == Limits(messages=0, tokens=0)
    assert limits_for(settings, {"quota_tokens_per_day": 100}) == Limits(messages=0, tokens=100)


async def test_without_limits_nothing_is_held_and_the_answer_counts_when_it_settles(mongo_uri: str) -> None:
    """No limits (the default): the reservation writes nothing (one write per answer fewer), a
    refused answer gives nothing back, and settling counts the message with its tokens."""
    import uuid

    from pymongo import AsyncMongoClient

    from backend.db import usage

    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongo_uri, tz_aware=True)
    db = client[f"quota_{uuid.uuid4().hex[:8]}"]
    try:
        user = ObjectId()
        held = await usage.reserve(db=db, user_id=user, tokens=50, limits=Limits(messages=0, tokens=0))
        assert held is not None and not held.counted and await db.usage_daily.count_documents({}) == 0
        await usage.release(db=db, reservation=held)
        assert await db.usage_daily.count_documents({}) == 0
        await usage.settle(db=db, reservation=held, prompt_tokens=7, generated_tokens=5)
        limited = await usage.reserve(db=db, user_id=user, tokens=50, limits=Limits(messages=10, tokens=0))
        assert limited is not None and limited.counted
        await usage.settle(db=db, reservation=limited, prompt_tokens=3, generated_tokens=4)
        day = await db.usage_daily.find_one({"user_id": user})
        assert day is not None
        assert (day["messages"], day["prompt_tokens"], day["generated_tokens"], day["counted_tokens"]) == (2, 10, 9, 9)
    finally:
        await client.drop_database(db.name)
        await client.close()


def test_reset_time_is_the_next_utc_midnight_in_both_languages() -> None:
    error = over_quota(dt.datetime(2026, 12, 7, 22, 30, tzinfo=dt.UTC))
    assert error.status_code == 429 and error.code == "quota_exceeded" and error.retry_after_s == 5400
    korean = error.message("ko")
    assert "2026-12-08 09:00(한국 시간, 2026-12-08 00:00 UTC)" in korean and "약 2시간" in korean
    assert "resets at 2026-12-08 00:00 UTC" in error.message("en")
