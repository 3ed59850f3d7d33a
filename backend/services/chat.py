"""Chat use cases, one function each, shared by both front doors (`backend.api`, `backend.web`).

Start a conversation with its first message, send, regenerate, stop, re-attach, delete a
conversation, feedback. Ids arrive as the strings the client sent: an id that is malformed, or
not the caller's, is "not found" in the same words, so nobody learns what others have.

"Never lose the user's message": the user message and the assistant message (a job owned by
this worker) are stored in one write before the answer starts; whatever happens afterwards ends
as the assistant message's status, with the text generated so far.
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

from backend.chat.events import StreamEvent, parse_event_id
from backend.chat.follow import Follower
from backend.chat.jobs import Job, JobRunner
from backend.chat.model_client import ModelClient
from backend.chat.prompt import Exchange
from backend.chat.schemas import ChatParameters
from backend.chat.turn import TurnRequest
from backend.core.clock import utcnow
from backend.core.errors import AppError
from backend.db import conversations as conversations_repo
from backend.db import images as images_repo
from backend.db import messages as messages_repo
from backend.db.client import Db
from backend.db.ids import parse_id
from backend.db.models import Alternative, ConversationDoc, MessageDoc
from backend.services import images as images_service
from backend.services import quota
from kovr.settings import Settings

DEFAULT_TEMPERATURE = 0.7
DEFAULT_TOP_P = 0.9
HISTORY_LIMIT = 400  # newest messages read for a prompt; trimming keeps far fewer
DEFAULT_TITLES = {"새 대화", "New chat"}
TITLE_CHARS = 40
STOP_WAIT_S = 15.0


@dataclass
class ChatServices:
    """Held on app.state.chat: settings, the model client, this worker's jobs and its follower."""

    settings: Settings
    model: ModelClient
    runner: JobRunner
    follower: Follower
    warmup: asyncio.Task[None] | None = None


@dataclass(frozen=True)
class Sent:
    user_message: MessageDoc | None
    assistant_message: MessageDoc
    job: Job


# -- lookups ---------------------------------------------------------------------------------
async def owned_conversation(db: Db, *, user_id: ObjectId, conversation_id: str | ObjectId) -> ConversationDoc:
    oid = parse_id(conversation_id)
    doc = None if oid is None else await conversations_repo.get_conversation(
        db=db, user_id=user_id, conversation_id=oid)
    if doc is None:
        raise AppError("conversation_not_found")
    return doc


async def owned_message(db: Db, *, user_id: ObjectId, message_id: str | ObjectId, answer: bool = False) -> MessageDoc:
    oid = parse_id(message_id)
    doc = None if oid is None else await messages_repo.get_message(db=db, user_id=user_id, message_id=oid)
    if doc is None or (answer and doc["role"] != "assistant"):
        raise AppError("message_not_found")
    return doc


async def is_latest(db: Db, message: MessageDoc) -> bool:
    """Whether nothing was said after it (only the latest answer can be regenerated)."""
    return await messages_repo.is_latest(db=db, user_id=message["user_id"], message=message)


def clean_content(content: str, settings: Settings, has_images: bool) -> str:
    text = unicodedata.normalize("NFC", content).strip()
    if not text and not has_images:
        raise AppError("empty_message")
    if len(text) > settings.max_message_chars:
        raise AppError("message_too_long")
    return text


def _parameters(params: ChatParameters, settings: Settings) -> dict[str, Any]:
    max_new = params.max_new_tokens or settings.chat_default_max_new_tokens
    if max_new > settings.max_new_tokens_limit:
        raise AppError("invalid_parameters", f"max_new_tokens > {settings.max_new_tokens_limit}")
    return {"max_new_tokens": max_new,
            "temperature": DEFAULT_TEMPERATURE if params.temperature is None else params.temperature,
            "top_p": DEFAULT_TOP_P if params.top_p is None else params.top_p, "seed": params.seed}


def _image_ids(values: list[str], settings: Settings) -> list[ObjectId]:
    if len(values) > settings.chat_max_images_per_message:
        raise AppError("too_many_images")
    ids = [parse_id(v) for v in values]
    if any(i is None for i in ids):
        raise AppError("image_not_found")
    return [i for i in ids if i is not None]


# -- one answer at a time per conversation, across workers --------------------------------------
async def _claim(chat: ChatServices, db: Db, conversation: ConversationDoc, message_id: ObjectId,
                 busy_code: str) -> None:
    async def claim() -> bool:
        return await conversations_repo.claim(db=db, user_id=conversation["user_id"],
                                              conversation_id=conversation["_id"], message_id=message_id)

    if await claim() or (await _free_stale_claim(chat, db, conversation) and await claim()):
        return
    raise AppError(busy_code)


async def _free_stale_claim(chat: ChatServices, db: Db, conversation: ConversationDoc) -> bool:
    """A claim whose answer ended, vanished or lost its worker is released (True if it was)."""
    conversation_id = conversation["_id"]
    current = await conversations_repo.get_conversation(
        db=db, user_id=conversation["user_id"], conversation_id=conversation_id)
    active = current.get("active_message_id") if current else None
    if active is None:
        return True
    doc = await messages_repo.get_job(db=db, message_id=active)
    lease_s = dt.timedelta(seconds=chat.settings.chat_lease_s)
    if doc is None and active.generation_time + lease_s > utcnow():
        return False  # claimed a moment ago; its messages are being written
    if (doc is not None and doc["status"] == "streaming"
            and not await messages_repo.settle_if_expired(db=db, message_id=active)):
        return False
    await conversations_repo.release(db=db, conversation_id=conversation_id, message_id=active)
    return True


# -- use cases -------------------------------------------------------------------------------
async def start_conversation(
    chat: ChatServices, db: Db, *, user_id: ObjectId, title: str, content: str | None,
    image_ids: list[str], params: ChatParameters,
) -> tuple[ConversationDoc, Sent | None]:
    """A new conversation, with its first answer started if a message was given. If the message
    is refused (empty, rate limit, …) the conversation is not kept: nothing empty is left behind."""
    if len(title) > chat.settings.max_title_chars:
        raise AppError("validation_error")
    if content is not None:  # refuse bad input before anything is stored
        clean_content(content, chat.settings, bool(image_ids))
        _image_ids(image_ids, chat.settings)
        _parameters(params, chat.settings)
    conversation = await conversations_repo.create_conversation(db=db, user_id=user_id, title=title)
    if content is None:
        return conversation, None
    try:
        sent = await send_message(chat, db, user_id=user_id, conversation=conversation, content=content,
                                  image_ids=image_ids, params=params)
    except BaseException:
        await conversations_repo.delete_conversation(db=db, user_id=user_id, conversation_id=conversation["_id"])
        raise
    return conversation, sent


async def send_message(
    chat: ChatServices, db: Db, *, user_id: ObjectId, conversation: ConversationDoc, content: str,
    image_ids: list[str], params: ChatParameters,
) -> Sent:
    settings = chat.settings
    ids = _image_ids(image_ids, settings)
    text = clean_content(content, settings, bool(ids))
    parameters = _parameters(params, settings)
    user_message = messages_repo.new_message(conversation_id=conversation["_id"], user_id=user_id, role="user",
                                             content=text, image_ids=ids)
    assistant = messages_repo.new_message(conversation_id=conversation["_id"], user_id=user_id,
                                          role="assistant", content="")
    messages_repo.new_job(assistant, worker_id=chat.runner.worker_id, lease_s=settings.chat_lease_s,
                          parameters=parameters, attempt=0)
    await _claim(chat, db, conversation, assistant["_id"], "generation_in_progress")
    # One round trip of concurrent work before the answer starts: the pair is stored while the rate
    # check and the history read run (both leave the new pair out), and taken back if either refuses.
    new_ids = (user_message["_id"], assistant["_id"])
    results = await asyncio.gather(
        messages_repo.insert_messages(db=db, docs=[user_message, assistant]),
        _check_rate(db, user_id, settings, until=user_message["created_at"]),
        images_service.owned_images(db=db, user_id=user_id, image_ids=ids),
        messages_repo.latest_messages(db=db, user_id=user_id, conversation_id=conversation["_id"],
                                      limit=HISTORY_LIMIT + len(new_ids)),
        quota.reserve(settings, db, user_id=user_id, tokens=parameters["max_new_tokens"]),
        return_exceptions=True,
    )
    stored, _, image_docs, thread, reservation = results
    try:
        failed = next((r for r in results if isinstance(r, BaseException)), None)
        if failed is not None:
            raise failed
        assert isinstance(image_docs, list) and isinstance(thread, list)
        thread = [m for m in thread if m["_id"] not in new_ids][-HISTORY_LIMIT:]
        request = _turn_request(_exchanges(thread), text, await images_service.model_data_uris(image_docs),
                                parameters)
    except BaseException:
        if not isinstance(stored, BaseException):
            await messages_repo.delete_messages(db=db, user_id=user_id, message_ids=list(new_ids))
        await conversations_repo.release(db=db, conversation_id=conversation["_id"], message_id=assistant["_id"])
        await quota.release(db, reservation)
        raise
    assert not isinstance(reservation, BaseException)
    job = chat.runner.start(assistant, request, reservation)
    await asyncio.gather(
        images_repo.attach_images(db=db, user_id=user_id, image_ids=ids, conversation_id=conversation["_id"]),
        _after_send(db, user_id, conversation, text),
    )
    return Sent(user_message, assistant, job)


async def regenerate(
    chat: ChatServices, db: Db, *, user_id: ObjectId, message_id: str, params: ChatParameters
) -> Sent:
    """Answer the same question again; the previous answer moves into `alternatives`."""
    message = await owned_message(db, user_id=user_id, message_id=message_id, answer=True)
    if message["status"] == "streaming":
        raise AppError("not_regenerable")
    conversation = await owned_conversation(db, user_id=user_id, conversation_id=message["conversation_id"])
    parameters = _parameters(params, chat.settings)
    await _claim(chat, db, conversation, message["_id"], "not_regenerable")
    reservation = None
    try:
        reservation = await quota.reserve(chat.settings, db, user_id=user_id, tokens=parameters["max_new_tokens"])
        thread = await messages_repo.latest_messages(db=db, user_id=user_id, conversation_id=conversation["_id"],
                                                     limit=HISTORY_LIMIT)
        if len(thread) < 2 or thread[-1]["_id"] != message["_id"] or thread[-2]["role"] != "user":
            raise AppError("not_regenerable")
        question = thread[-2]
        image_docs = await images_service.owned_images(db=db, user_id=user_id, image_ids=question["image_ids"])
        request = _turn_request(_exchanges(thread[:-2]), question["content"],
                                await images_service.model_data_uris(image_docs), parameters)
        updated = await messages_repo.restart_job(
            db=db, message=message, worker_id=chat.runner.worker_id, lease_s=chat.settings.chat_lease_s,
            parameters=parameters, alternative=_as_alternative(message))
        if updated is None:
            raise AppError("not_regenerable")
    except BaseException:
        await conversations_repo.release(db=db, conversation_id=conversation["_id"], message_id=message["_id"])
        await quota.release(db, reservation)
        raise
    return Sent(None, updated, chat.runner.start(updated, request, reservation))


async def stop(chat: ChatServices, db: Db, *, user_id: ObjectId, message_id: str) -> MessageDoc:
    """Stop a running answer on whichever worker runs it; returns it once its text is saved."""
    message = await owned_message(db, user_id=user_id, message_id=message_id, answer=True)
    job = chat.runner.get(message["_id"])
    if job is not None and job.terminal is None:
        job.request_stop("stopped")
        await asyncio.wait_for(job.done.wait(), STOP_WAIT_S)
    elif message["status"] != "streaming":
        raise AppError("not_streaming")
    else:
        await messages_repo.request_stop(db=db, user_id=user_id, message_id=message["_id"])
        await _until_final(chat, message)
    return await owned_message(db, user_id=user_id, message_id=message["_id"])


async def _until_final(chat: ChatServices, message: MessageDoc) -> None:
    async def drain() -> None:
        async for _ in chat.follower.follow(message, None):
            pass

    try:
        await asyncio.wait_for(drain(), STOP_WAIT_S + chat.settings.chat_lease_s)
    except TimeoutError:
        raise AppError("model_timeout", "stop not confirmed in time") from None


async def events(
    chat: ChatServices, db: Db, *, user_id: ObjectId, message_id: str, last_event_id: str | None
) -> AsyncIterator[StreamEvent]:
    """Re-attach to an answer: live from this worker's memory if it runs here, else from the
    database. Checked (owner, event id) before the stream starts: errors are plain HTTP errors."""
    position = parse_event_id(last_event_id)
    message = await owned_message(db, user_id=user_id, message_id=message_id, answer=True)
    job = chat.runner.get(message["_id"])
    if job is not None and job.attempt == messages_repo.attempt_of(message):
        return job.listen(position)
    return chat.follower.follow(message, position)


def listen(sent: Sent) -> AsyncIterator[StreamEvent]:
    """The events of an answer just started on this worker."""
    return sent.job.listen(None)


async def finished_answer(db: Db, sent: Sent) -> MessageDoc:
    """For callers that want the whole answer instead of a stream (`stream=false`)."""
    await sent.job.done.wait()
    message = sent.assistant_message
    return await owned_message(db, user_id=message["user_id"], message_id=message["_id"])


async def delete_conversation(chat: ChatServices, db: Db, *, user_id: ObjectId, conversation_id: str) -> None:
    """Delete it with its messages, images and feedback; a running answer is stopped first, so
    nothing is written into a deleted conversation."""
    conversation = await owned_conversation(db, user_id=user_id, conversation_id=conversation_id)
    active = conversation.get("active_message_id")
    if active is not None:
        if not chat.runner.request_stop(active):
            await messages_repo.request_stop(db=db, user_id=user_id, message_id=active)
        job = chat.runner.get(active)
        if job is not None:
            await asyncio.wait_for(job.done.wait(), STOP_WAIT_S)
    await conversations_repo.delete_conversation(db=db, user_id=user_id, conversation_id=conversation["_id"])


async def give_feedback(
    db: Db, *, user_id: ObjectId, message_id: str, rating: int, comment: str | None
) -> MessageDoc:
    message = await owned_message(db, user_id=user_id, message_id=message_id, answer=True)
    await messages_repo.upsert_feedback(db=db, message=message, rating=rating, comment=comment)
    return await owned_message(db, user_id=user_id, message_id=message["_id"])


# -- helpers ---------------------------------------------------------------------------------
async def _check_rate(db: Db, user_id: ObjectId, settings: Settings, until: dt.datetime | None = None) -> None:
    since = utcnow() - dt.timedelta(minutes=1)
    recent = await messages_repo.count_recent_user_messages(db=db, user_id=user_id, since=since, until=until)
    if recent >= settings.chat_rate_limit:
        raise AppError("chat_rate_limited")


def _turn_request(history: list[Exchange], question: str, image_uris: list[str],
                  parameters: dict[str, Any]) -> TurnRequest:
    return TurnRequest(history=history, question=question, image_uris=image_uris,
                       max_new_tokens=parameters["max_new_tokens"], temperature=parameters["temperature"],
                       top_p=parameters["top_p"], seed=parameters["seed"])


def _exchanges(thread: list[MessageDoc]) -> list[Exchange]:
    """Answered question/answer pairs in order; failed or empty answers are left out of the prompt."""
    pairs: list[Exchange] = []
    for question, answer in itertools.pairwise(thread):
        if question["role"] != "user" or answer["role"] != "assistant":
            continue
        if answer["status"] in ("complete", "stopped") and answer["content"]:
            pairs.append(Exchange(question["content"], answer["content"], bool(question.get("image_ids"))))
    return pairs


def _as_alternative(message: MessageDoc) -> Alternative:
    return Alternative(
        content=message["content"], status=message["status"], finish_reason=message.get("finish_reason"),
        generated_tokens=message.get("generated_tokens"), feedback=message.get("feedback"),
        parameters=message.get("parameters"), error=message.get("error"),
        created_at=message.get("updated_at") or message["created_at"],
    )


async def _after_send(db: Db, user_id: ObjectId, conversation: ConversationDoc, text: str) -> None:
    """Title a new conversation from its first message; move it to the top of the list (one write)."""
    title = None
    if not conversation.get("message_count", 0) and conversation.get("title") in DEFAULT_TITLES:
        first_line = (text.splitlines() or ["이미지"])[0].strip() or "이미지"
        title = first_line if len(first_line) <= TITLE_CHARS else first_line[: TITLE_CHARS - 1] + "…"
        conversation["title"] = title
    await conversations_repo.touch_conversation(db=db, user_id=user_id, conversation_id=conversation["_id"],
                                                added_messages=2, title=title)
