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
from typing import Any, cast

from bson import ObjectId

from backend.chat.events import Position, StreamEvent, parse_event_id
from backend.chat.follow import Follower
from backend.chat.jobs import Job, JobRunner
from backend.chat.model_client import ModelClient
from backend.chat.prompt import Exchange
from backend.chat.schemas import ChatParameters
from backend.chat.turn import TurnRequest
from backend.core.aio import within
from backend.core.clock import utcnow
from backend.core.errors import AppError
from backend.db import conversations as conversations_repo
from backend.db import images as images_repo
from backend.db import messages as messages_repo
from backend.db.client import Db
from backend.db.conversations import Shown
from backend.db.ids import parse_id
from backend.db.models import ConversationDoc, MessageDoc
from backend.db.tree import Tree
from backend.db.usage import Reservation
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
    after: Position | None = None  # continue: the stream starts after the text already saved


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
                 busy_code: str, shown: Shown | None = None) -> None:
    async def claim() -> bool:
        return await conversations_repo.claim(db=db, user_id=conversation["user_id"],
                                              conversation_id=conversation["_id"], message_id=message_id, shown=shown)

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


@dataclass(frozen=True)
class _Answer:
    """One answer to start: where it hangs in the tree and what its prompt is made of."""

    conversation: ConversationDoc
    question: MessageDoc  # the user message answered (new, or already stored)
    assistant: MessageDoc  # a new job, or the continued message
    new_docs: list[MessageDoc]  # stored when the answer starts, taken back if it is refused
    parameters: dict[str, Any]
    continued: bool = False  # continue: the message exists, it becomes a job again
    new_question: bool = False  # counts against the user's message rate


async def send_message(
    chat: ChatServices, db: Db, *, user_id: ObjectId, conversation: ConversationDoc, content: str,
    image_ids: list[str], params: ChatParameters,
) -> Sent:
    """A new message at the end of the shown branch, and its answer."""
    parent = await _shown_leaf(db, conversation)
    return await _new_question(chat, db, conversation=conversation, parent_id=parent, content=content,
                               image_ids=_image_ids(image_ids, chat.settings), params=params)


async def edit_message(
    chat: ChatServices, db: Db, *, user_id: ObjectId, message_id: str, content: str,
    image_ids: list[str] | None, params: ChatParameters,
) -> Sent:
    """Edit and resend: a new sibling of a user message (a new branch) and its answer; the old
    branch stays. Without `image_ids` the edited message keeps the original's images."""
    message = await owned_message(db, user_id=user_id, message_id=message_id)
    if message["role"] != "user":
        raise AppError("not_editable")
    conversation = await owned_conversation(db, user_id=user_id, conversation_id=message["conversation_id"])
    ids = message["image_ids"] if image_ids is None else _image_ids(image_ids, chat.settings)
    return await _new_question(chat, db, conversation=conversation, parent_id=message.get("parent_id"),
                               content=content, image_ids=ids, params=params)


async def _new_question(
    chat: ChatServices, db: Db, *, conversation: ConversationDoc, parent_id: ObjectId | None, content: str,
    image_ids: list[ObjectId], params: ChatParameters,
) -> Sent:
    text = clean_content(content, chat.settings, bool(image_ids))
    question = messages_repo.new_message(conversation_id=conversation["_id"], user_id=conversation["user_id"],
                                         role="user", content=text, image_ids=image_ids, parent_id=parent_id)
    assistant = _new_answer(conversation, question)
    return await _start_answer(chat, db, _Answer(conversation, question, assistant, [question, assistant],
                                                 _parameters(params, chat.settings), new_question=True))


async def regenerate(
    chat: ChatServices, db: Db, *, user_id: ObjectId, message_id: str, params: ChatParameters
) -> Sent:
    """Answer the same question again: a new sibling of the answer, shown from now on."""
    message = await owned_message(db, user_id=user_id, message_id=message_id, answer=True)
    parent_id = message.get("parent_id")
    if message["status"] == "streaming" or parent_id is None:
        raise AppError("not_regenerable")
    question = await owned_message(db, user_id=user_id, message_id=parent_id)
    conversation = await owned_conversation(db, user_id=user_id, conversation_id=message["conversation_id"])
    assistant = _new_answer(conversation, question)
    return await _start_answer(chat, db, _Answer(conversation, question, assistant, [assistant],
                                                 _parameters(params, chat.settings)))


async def continue_answer(
    chat: ChatServices, db: Db, *, user_id: ObjectId, message_id: str, params: ChatParameters
) -> Sent:
    """Go on from an answer that ended on `length`, in the same message. Only a branch's last
    message: text that later messages were answered to is not changed under them."""
    message = await owned_message(db, user_id=user_id, message_id=message_id, answer=True)
    parent_id = message.get("parent_id")
    if (message["status"] != "complete" or message.get("finish_reason") != "length" or parent_id is None
            or await messages_repo.has_children(db=db, message=message)):
        raise AppError("not_continuable")
    question = await owned_message(db, user_id=user_id, message_id=parent_id)
    conversation = await owned_conversation(db, user_id=user_id, conversation_id=message["conversation_id"])
    stored = message.get("parameters") or {}
    parameters = _parameters(params.model_copy(update={  # unset fields keep the answer's own sampling
        k: stored.get(k) for k in ("temperature", "top_p", "seed") if getattr(params, k) is None}), chat.settings)
    return await _start_answer(chat, db, _Answer(conversation, question, message, [], parameters, continued=True))


def _new_answer(conversation: ConversationDoc, question: MessageDoc) -> MessageDoc:
    return messages_repo.new_message(conversation_id=conversation["_id"], user_id=conversation["user_id"],
                                     role="assistant", content="", parent_id=question["_id"])


async def _start_answer(chat: ChatServices, db: Db, answer: _Answer) -> Sent:
    """The one way an answer starts (send, edit, regenerate, continue): claim the conversation and
    show the answer's branch in it (one write), store the new messages (or make the continued one a
    job), build the request from the path root → question, start the job. Anything refused before
    the job starts is taken back, so nothing half-made is left."""
    conversation, assistant = answer.conversation, answer.assistant
    if not answer.continued:
        messages_repo.new_job(assistant, worker_id=chat.runner.worker_id, lease_s=chat.settings.chat_lease_s,
                              parameters=answer.parameters, attempt=0)
    shown = _shown(answer)
    await _claim(chat, db, conversation, assistant["_id"], "generation_in_progress", shown)
    # One round trip of concurrent work: the messages are stored while the rate check, the quota
    # reservation and the history read run (none sees the new messages); all of it is taken back
    # if any part refuses.
    results = await asyncio.gather(
        _store(chat, db, answer), _check_rate(db, conversation["user_id"], chat.settings,
                                              until=answer.question["created_at"], skip=not answer.new_question),
        _request(db, answer),
        quota.reserve(chat.settings, db, user_id=conversation["user_id"], tokens=answer.parameters["max_new_tokens"]),
        return_exceptions=True)
    stored, _, request, reservation = results
    try:
        failed = next((r for r in results if isinstance(r, BaseException)), None)
        if failed is not None:
            raise failed
        assert isinstance(stored, dict) and isinstance(request, TurnRequest)
        assert isinstance(reservation, Reservation)
    except BaseException:
        await asyncio.gather(_take_back(chat, db, answer, shown, stored_ok=not isinstance(stored, BaseException)),
                             quota.release(db, reservation))
        raise
    job = chat.runner.start(cast(MessageDoc, stored), request, reservation)
    if shown.title is not None:
        conversation["title"] = shown.title
    await images_repo.attach_images(db=db, user_id=conversation["user_id"], image_ids=answer.question["image_ids"],
                                    conversation_id=conversation["_id"])
    after = Position(job.attempt, len(assistant["content"])) if answer.continued else None
    return Sent(answer.question if answer.new_question else None, cast(MessageDoc, stored), job, after)


async def _store(chat: ChatServices, db: Db, answer: _Answer) -> MessageDoc:
    if not answer.continued:
        await messages_repo.insert_messages(db=db, docs=answer.new_docs)
        return answer.assistant
    job = await messages_repo.continue_job(db=db, message=answer.assistant, worker_id=chat.runner.worker_id,
                                           lease_s=chat.settings.chat_lease_s, parameters=answer.parameters)
    if job is None:
        raise AppError("not_continuable")
    return job


async def _take_back(chat: ChatServices, db: Db, answer: _Answer, shown: Shown, *, stored_ok: bool) -> None:
    user_id, message_id = answer.conversation["user_id"], answer.assistant["_id"]
    if stored_ok and answer.continued:  # back to the answer it was, text untouched
        await messages_repo.finish_job(db=db, message_id=message_id, worker_id=chat.runner.worker_id,
                                       changes={"status": "complete", "finish_reason": "length"})
    elif stored_ok:
        await messages_repo.delete_messages(db=db, user_id=user_id, message_ids=[d["_id"] for d in answer.new_docs])
    await conversations_repo.release(db=db, conversation_id=answer.conversation["_id"], message_id=message_id,
                                     undo=(answer.conversation, shown))


async def _request(db: Db, answer: _Answer) -> TurnRequest:
    """The model request: the path root → the question's parent as history (trimmed later by
    `build_prompt`), the question with its images, and for continue the saved text."""
    question, user_id = answer.question, answer.conversation["user_id"]
    history, image_docs = await asyncio.gather(
        branch_messages(db, conversation=answer.conversation, leaf_id=question.get("parent_id"),
                        limit=HISTORY_LIMIT),
        images_service.owned_images(db=db, user_id=user_id, image_ids=question["image_ids"]))
    parameters = answer.parameters
    return TurnRequest(history=_exchanges(history), question=question["content"],
                       image_uris=await images_service.model_data_uris(image_docs),
                       max_new_tokens=parameters["max_new_tokens"], temperature=parameters["temperature"],
                       top_p=parameters["top_p"], seed=parameters["seed"],
                       answer_prefix=answer.assistant["content"] if answer.continued else "")


async def branch_messages(
    db: Db, *, conversation: ConversationDoc, leaf_id: ObjectId | None, limit: int | None = None,
) -> list[MessageDoc]:
    """The messages of the path root → `leaf_id` (the newest `limit` of them), oldest first."""
    if leaf_id is None:
        return []
    tree = Tree(await messages_repo.tree_nodes(db=db, user_id=conversation["user_id"],
                                               conversation_id=conversation["_id"]))
    ids = tree.path(leaf_id)
    return await messages_repo.get_messages(db=db, user_id=conversation["user_id"],
                                            message_ids=ids[-limit:] if limit else ids)


async def _shown_leaf(db: Db, conversation: ConversationDoc) -> ObjectId | None:
    """Where a new message goes: the shown branch's last message (the newest message for a
    conversation stored before the tree had a leaf)."""
    leaf = conversation.get("current_leaf_id")
    if leaf is not None or not conversation.get("message_count"):
        return leaf
    newest = await messages_repo.latest_messages(db=db, user_id=conversation["user_id"],
                                                 conversation_id=conversation["_id"], limit=1)
    return newest[0]["_id"] if newest else None


async def stop(chat: ChatServices, db: Db, *, user_id: ObjectId, message_id: str) -> MessageDoc:
    """Stop a running answer on whichever worker runs it; returns it once its text is saved."""
    message = await owned_message(db, user_id=user_id, message_id=message_id, answer=True)
    job = chat.runner.get(message["_id"])
    if job is not None and job.terminal is None:
        job.request_stop("stopped")
        await _until_done(job)
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
        await within(drain(), STOP_WAIT_S + chat.settings.chat_lease_s)
    except TimeoutError:
        raise AppError("model_timeout", "stop not confirmed in time") from None


async def _until_done(job: Job) -> None:
    """A stopped answer of this worker has ended (its text saved)."""
    try:
        await within(job.done.wait(), STOP_WAIT_S)
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
    if job is not None and _is_current(job, message):
        return job.listen(position)
    return chat.follower.follow(message, position)


def _is_current(job: Job, message: MessageDoc) -> bool:
    """Whether this worker's job in memory is the message's current run: a run that finished here
    moments ago is not, once the answer was continued (on any worker) and streams again or grew."""
    if job.attempt != messages_repo.attempt_of(message):
        return False
    return job.terminal is None or (message["status"] != "streaming" and len(job.text) >= len(message["content"]))


def listen(sent: Sent) -> AsyncIterator[StreamEvent]:
    """The events of an answer just started on this worker (for continue: only the new text)."""
    return sent.job.listen(sent.after)


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
            await _until_done(job)
    await conversations_repo.delete_conversation(db=db, user_id=user_id, conversation_id=conversation["_id"])


async def delete_message(chat: ChatServices, db: Db, *, user_id: ObjectId, message_id: str) -> ConversationDoc:
    """Delete a message with everything below it (feedback too; images stay with the conversation,
    another branch may show them). Refused while an answer in it streams; the shown branch moves
    to the newest remaining sibling's leaf, or to the parent."""
    message = await owned_message(db, user_id=user_id, message_id=message_id)
    conversation = await owned_conversation(db, user_id=user_id, conversation_id=message["conversation_id"])
    nodes = await messages_repo.tree_nodes(db=db, user_id=user_id, conversation_id=conversation["_id"])
    tree = Tree(nodes)
    doomed = tree.subtree(message["_id"])
    await _refuse_if_streaming(db, conversation, {d["_id"] for d in nodes if d.get("status") == "streaming"},
                               set(doomed))
    leaf = tree.shown_leaf(conversation.get("current_leaf_id"))
    if leaf in doomed:
        leaf = tree.leaf_after_delete(message["_id"])
    await messages_repo.delete_messages(db=db, user_id=user_id, message_ids=doomed)
    await conversations_repo.set_leaf(db=db, user_id=user_id, conversation_id=conversation["_id"], leaf_id=leaf,
                                      removed_messages=len(doomed))
    return await owned_conversation(db, user_id=user_id, conversation_id=conversation["_id"])


async def _refuse_if_streaming(db: Db, conversation: ConversationDoc, streaming: set[ObjectId],
                               doomed: set[ObjectId]) -> None:
    """409 while an answer in `doomed` runs; one whose worker died is settled first, and a claim
    on a message about to be deleted is given back (it would hold the conversation for a lease)."""
    for message_id in streaming & doomed:
        if not await messages_repo.settle_if_expired(db=db, message_id=message_id):
            raise AppError("message_streaming")
    active = conversation.get("active_message_id")
    if active in doomed:
        await conversations_repo.release(db=db, conversation_id=conversation["_id"], message_id=active)


async def give_feedback(
    db: Db, *, user_id: ObjectId, message_id: str, rating: int, comment: str | None
) -> MessageDoc:
    message = await owned_message(db, user_id=user_id, message_id=message_id, answer=True)
    await messages_repo.upsert_feedback(db=db, message=message, rating=rating, comment=comment)
    return await owned_message(db, user_id=user_id, message_id=message["_id"])


# -- helpers ---------------------------------------------------------------------------------
async def _check_rate(db: Db, user_id: ObjectId, settings: Settings, until: dt.datetime | None = None,
                      skip: bool = False) -> None:
    if skip:  # regenerate and continue ask nothing new
        return
    since = utcnow() - dt.timedelta(minutes=1)
    recent = await messages_repo.count_recent_user_messages(db=db, user_id=user_id, since=since, until=until)
    if recent >= settings.chat_rate_limit:
        raise AppError("chat_rate_limited")


def _exchanges(thread: list[MessageDoc]) -> list[Exchange]:
    """Answered question/answer pairs in order; failed or empty answers are left out of the prompt."""
    pairs: list[Exchange] = []
    for question, answer in itertools.pairwise(thread):
        if question["role"] != "user" or answer["role"] != "assistant":
            continue
        if answer["status"] in ("complete", "stopped") and answer["content"]:
            pairs.append(Exchange(question["content"], answer["content"], bool(question.get("image_ids"))))
    return pairs


def _shown(answer: _Answer) -> Shown:
    """What the answer changes in its conversation: its branch is shown, the new messages counted,
    the conversation moves to the top of the list, and a new one is titled from its first message."""
    conversation, title = answer.conversation, None
    text = answer.question["content"]
    if (answer.new_question and not conversation.get("message_count", 0)
            and conversation.get("title") in DEFAULT_TITLES):
        first_line = (text.splitlines() or ["이미지"])[0].strip() or "이미지"
        title = first_line if len(first_line) <= TITLE_CHARS else first_line[: TITLE_CHARS - 1] + "…"
    return Shown(leaf_id=answer.assistant["_id"], added_messages=len(answer.new_docs), title=title)
