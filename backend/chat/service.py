"""Chat use cases behind the routes: send, regenerate, stop, re-attach, feedback.

Order matters for "never lose the user's message": the user message is stored first, then the
assistant message (status streaming), then the background generation starts. Whatever happens
at the model afterwards ends up as the assistant message's status, never as a lost question.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import unicodedata
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from bson import ObjectId

from backend.chat import images as images_service
from backend.chat.errors import ChatError
from backend.chat.generation import Generation, GenerationRegistry, StreamEvent, parse_event_id
from backend.chat.model_client import ModelClient
from backend.chat.prompt import Exchange
from backend.chat.runner import AnswerRequest, RunContext, run_answer
from backend.chat.schemas import ChatParameters
from backend.core.clock import utcnow
from backend.db import conversations as conversations_repo
from backend.db import messages as messages_repo
from backend.db.client import Db
from kovr.settings import Settings

DEFAULT_TEMPERATURE = 0.7
DEFAULT_TOP_P = 0.9
HISTORY_LIMIT = 400  # messages read for a prompt; trimming keeps far fewer
DEFAULT_TITLES = {"새 대화", "New chat"}
TITLE_CHARS = 40


@dataclass
class ChatServices:
    """Held on app.state.chat: the model client, the running generations and the settings."""

    settings: Settings
    model: ModelClient
    registry: GenerationRegistry


@dataclass(frozen=True)
class Sent:
    user_message: dict[str, Any] | None
    assistant_message: dict[str, Any]
    generation: Generation


def clean_content(content: str, settings: Settings, has_images: bool) -> str:
    text = unicodedata.normalize("NFC", content).strip()
    if not text and not has_images:
        raise ChatError("empty_message", 422)
    if len(text) > settings.max_message_chars:
        raise ChatError("message_too_long", 422)
    return text


def _answer_limits(params: ChatParameters, settings: Settings) -> tuple[int, float, float]:
    max_new = params.max_new_tokens or settings.chat_default_max_new_tokens
    if max_new > settings.max_new_tokens_limit:
        raise ChatError("invalid_parameters", 422, f"max_new_tokens > {settings.max_new_tokens_limit}")
    temperature = DEFAULT_TEMPERATURE if params.temperature is None else params.temperature
    return max_new, temperature, DEFAULT_TOP_P if params.top_p is None else params.top_p


async def _check_rate(db: Db, user_id: ObjectId, settings: Settings) -> None:
    since = utcnow() - dt.timedelta(minutes=1)
    recent = await db.messages.count_documents({"user_id": user_id, "role": "user", "created_at": {"$gt": since}})
    if recent >= settings.chat_rate_limit:
        raise ChatError("chat_rate_limited", 429)


async def send_message(
    chat: ChatServices, db: Db, *, user_id: ObjectId, conversation: dict[str, Any], content: str,
    image_ids: list[str], params: ChatParameters,
) -> Sent:
    settings = chat.settings
    conversation_id = conversation["_id"]
    if len(image_ids) > settings.chat_max_images_per_message:
        raise ChatError("too_many_images", 422)
    text = clean_content(content, settings, bool(image_ids))
    max_new, temperature, top_p = _answer_limits(params, settings)
    if not chat.registry.claim(str(conversation_id)):
        raise ChatError("generation_in_progress", 409)
    try:
        return await _send_claimed(chat, db, user_id=user_id, conversation=conversation, text=text,
                                   image_ids=image_ids, params=params, limits=(max_new, temperature, top_p))
    finally:  # once started, the running generation itself blocks a second answer
        chat.registry.release(str(conversation_id))


async def _send_claimed(
    chat: ChatServices, db: Db, *, user_id: ObjectId, conversation: dict[str, Any], text: str,
    image_ids: list[str], params: ChatParameters, limits: tuple[int, float, float],
) -> Sent:
    settings = chat.settings
    conversation_id = conversation["_id"]
    max_new, temperature, top_p = limits
    await _check_rate(db, user_id, settings)
    ids = [ObjectId(i) for i in image_ids]
    image_docs = await images_service.owned_images(db=db, user_id=user_id, image_ids=ids) if ids else []
    request = AnswerRequest(
        history=await _history(db, user_id, conversation_id), question=text,
        image_uris=await images_service.model_data_uris(image_docs),
        max_new_tokens=max_new, temperature=temperature, top_p=top_p, seed=params.seed,
    )
    user_message = await messages_repo.create_message(
        db=db, conversation_id=conversation_id, user_id=user_id, role="user", content=text, image_ids=ids,
    )
    parameters = {"max_new_tokens": max_new, "temperature": temperature, "top_p": top_p, "seed": params.seed}
    assistant = await messages_repo.create_message(
        db=db, conversation_id=conversation_id, user_id=user_id, role="assistant", content="",
        status="streaming", extra={"parameters": parameters},
    )
    # Started before anything else is awaited: a reload never finds a "streaming" answer without its task.
    generation = _start(chat, db, user_id, assistant, attempt=0, request=request)
    await images_service.attach_images(db=db, user_id=user_id, image_ids=ids, conversation_id=conversation_id)
    await _title_from_first_message(db, user_id, conversation, text)
    await conversations_repo.touch_conversation(
        db=db, user_id=user_id, conversation_id=conversation_id, added_messages=2
    )
    return Sent(user_message, assistant, generation)


async def regenerate(
    chat: ChatServices, db: Db, *, user_id: ObjectId, message_id: ObjectId, params: ChatParameters
) -> Sent:
    """Answer the same question again; the previous answer moves into `alternatives`."""
    message = await messages_repo.get_message(db=db, user_id=user_id, message_id=message_id)
    if message is None or message["role"] != "assistant":
        raise ChatError("message_not_found", 404)
    conversation_id = str(message["conversation_id"])
    if message["status"] == "streaming" or not chat.registry.claim(conversation_id):
        raise ChatError("not_regenerable", 409)
    try:
        return await _regenerate_claimed(chat, db, user_id=user_id, message=message, params=params)
    finally:
        chat.registry.release(conversation_id)


async def _regenerate_claimed(
    chat: ChatServices, db: Db, *, user_id: ObjectId, message: dict[str, Any], params: ChatParameters
) -> Sent:
    message_id = message["_id"]
    thread = await _thread(db, user_id, message["conversation_id"])
    if not thread or thread[-1]["_id"] != message_id or len(thread) < 2 or thread[-2]["role"] != "user":
        raise ChatError("not_regenerable", 409)
    max_new, temperature, top_p = _answer_limits(params, chat.settings)
    question = thread[-2]
    image_docs = (
        await images_service.owned_images(db=db, user_id=user_id, image_ids=list(question.get("image_ids", [])))
        if question.get("image_ids") else []
    )
    image_uris = await images_service.model_data_uris(image_docs)
    alternatives = [*message.get("alternatives", []), _as_alternative(message)]
    parameters = {"max_new_tokens": max_new, "temperature": temperature, "top_p": top_p, "seed": params.seed}
    updated = await messages_repo.update_message(db=db, user_id=user_id, message_id=message_id, changes={
        "content": "", "status": "streaming", "alternatives": alternatives, "parameters": parameters,
        "feedback": None, "error": None, "finish_reason": None, "generated_tokens": 0,
    })
    assert updated is not None
    request = AnswerRequest(
        history=_exchanges(thread[:-2]), question=question["content"], image_uris=image_uris,
        max_new_tokens=max_new, temperature=temperature, top_p=top_p, seed=params.seed,
    )
    generation = _start(chat, db, user_id, updated, attempt=len(alternatives), request=request)
    return Sent(None, updated, generation)


def _start(
    chat: ChatServices, db: Db, user_id: ObjectId, assistant: dict[str, Any], *, attempt: int,
    request: AnswerRequest,
) -> Generation:
    generation = Generation(
        message_id=str(assistant["_id"]), conversation_id=str(assistant["conversation_id"]),
        user_id=str(user_id), attempt=attempt,
    )
    ctx = RunContext(db=db, model=chat.model, user_id=user_id, message_id=assistant["_id"],
                     save_interval_s=chat.settings.chat_save_interval_s)
    chat.registry.start(generation, lambda g: run_answer(g, ctx, request))
    return generation


async def stop(chat: ChatServices, db: Db, *, user_id: ObjectId, message_id: ObjectId) -> dict[str, Any]:
    """Stop a running answer and wait until what it has is saved; returns the saved message."""
    message = await messages_repo.get_message(db=db, user_id=user_id, message_id=message_id)
    if message is None or message["role"] != "assistant":
        raise ChatError("message_not_found", 404)
    if chat.registry.stop(str(message_id)):
        await chat.registry.wait(str(message_id))
        message = await messages_repo.get_message(db=db, user_id=user_id, message_id=message_id)
        assert message is not None
    elif message["status"] != "streaming":
        raise ChatError("not_streaming", 409)
    return message


async def events_for(
    chat: ChatServices, db: Db, *, user_id: ObjectId, message_id: ObjectId, last_event_id: str | None
) -> AsyncIterator[StreamEvent]:
    """Re-attach: the live generation if it is still in memory, else the saved message."""
    message = await messages_repo.get_message(db=db, user_id=user_id, message_id=message_id)
    if message is None or message["role"] != "assistant":
        raise ChatError("message_not_found", 404)
    generation = chat.registry.get(str(message_id))
    if generation is None and message["status"] == "streaming":
        # Just created and its task not registered yet? Look once more before calling it lost.
        await asyncio.sleep(0.25)
        generation = chat.registry.get(str(message_id))
        message = await messages_repo.get_message(db=db, user_id=user_id, message_id=message_id) or message
    if generation is not None and generation.user_id == str(user_id):
        return generation.listen(last_event_id)
    return _saved_events(db, user_id, message, last_event_id)


async def _saved_events(
    db: Db, user_id: ObjectId, message: dict[str, Any], last_event_id: str | None
) -> AsyncIterator[StreamEvent]:
    attempt = len(message.get("alternatives", []))
    position = parse_event_id(last_event_id)
    sent = position[1] if position and position[0] == attempt else 0
    content: str = message["content"]
    event_id = f"{attempt}-{len(content)}"
    if message["status"] == "streaming":
        # No task is producing it (the server restarted mid-answer): settle it as an error.
        await messages_repo.update_message(db=db, user_id=user_id, message_id=message["_id"],
                                           changes={"status": "error", "error": "interrupted"})
        message = {**message, "status": "error", "error": "interrupted"}
    if len(content) > sent:
        yield StreamEvent("token", {"text": content[sent:]}, event_id)
    if message["status"] == "error":
        error = ChatError(message.get("error") or "model_error")
        yield StreamEvent("error", error.payload(), event_id)
        return
    yield StreamEvent("done", {
        "message_id": str(message["_id"]),
        "finish_reason": message.get("finish_reason") or ("stopped" if message["status"] == "stopped" else "length"),
        "generated_tokens": message.get("generated_tokens", 0),
        "time_to_first_token_ms": message.get("time_to_first_token_ms"),
    }, event_id)


async def give_feedback(
    db: Db, *, user_id: ObjectId, message_id: ObjectId, rating: int, comment: str | None
) -> dict[str, Any]:
    message = await messages_repo.get_message(db=db, user_id=user_id, message_id=message_id)
    if message is None or message["role"] != "assistant":
        raise ChatError("message_not_found", 404)
    now = utcnow()
    feedback = {"rating": rating, "comment": comment, "updated_at": now}
    await db.feedback.update_one(
        {"message_id": message_id, "user_id": user_id},
        {"$set": {**feedback, "conversation_id": message["conversation_id"], "content": message["content"]},
         "$setOnInsert": {"created_at": now}},
        upsert=True,
    )
    updated = await messages_repo.update_message(
        db=db, user_id=user_id, message_id=message_id, changes={"feedback": {"rating": rating, "comment": comment}}
    )
    assert updated is not None
    return updated


async def _thread(db: Db, user_id: ObjectId, conversation_id: ObjectId) -> list[dict[str, Any]]:
    return await messages_repo.list_messages(
        db=db, user_id=user_id, conversation_id=conversation_id, limit=HISTORY_LIMIT
    )


async def _history(db: Db, user_id: ObjectId, conversation_id: ObjectId) -> list[Exchange]:
    return _exchanges(await _thread(db, user_id, conversation_id))


def _exchanges(thread: list[dict[str, Any]]) -> list[Exchange]:
    """Answered question/answer pairs in order; failed or empty answers are left out of the prompt."""
    pairs: list[Exchange] = []
    for question, answer in itertools.pairwise(thread):
        if question["role"] != "user" or answer["role"] != "assistant":
            continue
        if answer["status"] in ("complete", "stopped") and answer["content"]:
            pairs.append(Exchange(question["content"], answer["content"], bool(question.get("image_ids"))))
    return pairs


def _as_alternative(message: dict[str, Any]) -> dict[str, Any]:
    keys = ("content", "status", "finish_reason", "generated_tokens", "feedback", "parameters", "error")
    return {**{k: message.get(k) for k in keys}, "created_at": message.get("updated_at") or message["created_at"]}


async def _title_from_first_message(db: Db, user_id: ObjectId, conversation: dict[str, Any], text: str) -> None:
    if conversation.get("message_count", 0) or conversation.get("title") not in DEFAULT_TITLES:
        return
    first_line = (text.splitlines() or ["이미지"])[0].strip() or "이미지"
    title = first_line if len(first_line) <= TITLE_CHARS else first_line[: TITLE_CHARS - 1] + "…"
    await conversations_repo.update_conversation(
        db=db, user_id=user_id, conversation_id=conversation["_id"], changes={"title": title}
    )
    conversation["title"] = title
