"""Pages: the chat screen, sending (htmx), message fragments, conversation rename/delete."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, Query, Request
from pydantic import TypeAdapter, ValidationError
from starlette.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response

from backend.api.deps import DbDep, OptionalUser
from backend.chat import service
from backend.chat.errors import ChatError
from backend.chat.http import get_chat
from backend.chat.pages.common import locale, to_login, user_view
from backend.chat.pages.templating import render
from backend.chat.pages.views import conversation_view, message_view, message_views
from backend.chat.schemas import answer_style_parameters
from backend.core.text import SEARCH_MAX_CHARS, Title, search_text
from backend.db import conversations as conversations_repo
from backend.db import messages as messages_repo
from backend.db.client import Db
from backend.db.ids import parse_id
from backend.schemas.conversations import DEFAULT_TITLE

router = APIRouter(include_in_schema=False)
SIDEBAR_LIMIT = 100
PAGE_MESSAGES = 400


async def _conversation(db: Db, user: dict[str, Any], conversation_id: str) -> dict[str, Any] | None:
    oid = parse_id(conversation_id)
    return None if oid is None else await conversations_repo.get_conversation(
        db=db, user_id=user["_id"], conversation_id=oid)


async def _chat_page(request: Request, db: Db, user: dict[str, Any], conversation: dict[str, Any] | None) -> Response:
    docs = await conversations_repo.list_conversations(db=db, user_id=user["_id"], limit=SIDEBAR_LIMIT)
    messages: list[dict[str, Any]] = []
    if conversation is not None:
        messages = message_views(await messages_repo.list_messages(
            db=db, user_id=user["_id"], conversation_id=conversation["_id"], limit=PAGE_MESSAGES), locale(request))
    current = conversation_view(conversation) if conversation else None
    return render(
        request, "chat.html", user=user_view(user), conversations=[conversation_view(d) for d in docs],
        conversation=current, current_id=current["id"] if current else None, messages=messages,
        max_chars=request.app.state.settings.max_message_chars,
    )


@router.get("/chat")
async def new_chat(request: Request, db: DbDep, user: OptionalUser) -> Response:
    if user is None:
        return to_login(request)
    return await _chat_page(request, db, user, None)


@router.get("/c/{conversation_id}")
async def open_chat(conversation_id: str, request: Request, db: DbDep, user: OptionalUser) -> Response:
    if user is None:
        return to_login(request)
    conversation = await _conversation(db, user, conversation_id)
    if conversation is None:
        return RedirectResponse("/chat", status_code=303)
    return await _chat_page(request, db, user, conversation)


def _error(request: Request, exc: ChatError) -> Response:
    # htmx shows this text in a toast (see app.js); the status keeps it out of the message list.
    return PlainTextResponse(exc.message(locale(request)), status_code=exc.status_code)


@router.post("/chat/send")
async def send(
    request: Request, db: DbDep, user: OptionalUser,
    content: Annotated[str, Form(max_length=100_000)] = "",
    conversation_id: Annotated[str, Form(max_length=24)] = "",
    image_ids: Annotated[list[str], Form()] = [],  # noqa: B006 - FastAPI form default
) -> Response:
    if user is None:
        return to_login(request)
    chat = get_chat(request)
    try:
        if any(parse_id(i) is None for i in image_ids):
            raise ChatError("image_not_found", 404)
        service.clean_content(content, chat.settings, bool(image_ids))
        conversation = await _conversation(db, user, conversation_id) if conversation_id else None
        if conversation_id and conversation is None:
            raise ChatError("conversation_not_found", 404)
        created = conversation is None
        if conversation is None:
            conversation = await conversations_repo.create_conversation(db=db, user_id=user["_id"], title=DEFAULT_TITLE)
        try:
            sent = await service.send_message(chat, db, user_id=user["_id"], conversation=conversation,
                                              content=content, image_ids=image_ids,
                                              params=answer_style_parameters(user))
        except ChatError:
            if created:  # nothing was stored in it: do not leave an empty conversation behind
                await conversations_repo.delete_conversation(db=db, user_id=user["_id"], conversation_id=conversation["_id"])
            raise
    except ChatError as exc:
        return _error(request, exc)
    assert sent.user_message is not None
    views = [message_view(sent.user_message, is_last=False, locale=locale(request)),
             message_view(sent.assistant_message, is_last=True, locale=locale(request))]
    response = render(request, "partials/sent.html", sent_messages=views, new_conversation=created,
                      conversation=conversation_view(conversation))
    if created:
        response.headers["HX-Push-Url"] = f"/c/{conversation['_id']}"
    return response


async def _owned_message(db: Db, user: dict[str, Any], message_id: str) -> dict[str, Any] | None:
    oid = parse_id(message_id)
    return None if oid is None else await messages_repo.get_message(db=db, user_id=user["_id"], message_id=oid)


async def _is_last(db: Db, user: dict[str, Any], message: dict[str, Any]) -> bool:
    latest = await db.messages.find({"conversation_id": message["conversation_id"], "user_id": user["_id"]}).sort(
        [("created_at", -1), ("_id", -1)]).limit(1).to_list(length=1)
    return bool(latest) and latest[0]["_id"] == message["_id"]


@router.get("/m/{message_id}")
async def message_fragment(message_id: str, request: Request, db: DbDep, user: OptionalUser) -> Response:
    """One message rendered (Markdown on the server): swapped in when its stream ends."""
    if user is None:
        return to_login(request)
    message = await _owned_message(db, user, message_id)
    if message is None:
        return PlainTextResponse("", status_code=404)
    view = message_view(message, is_last=await _is_last(db, user, message), locale=locale(request))
    return render(request, "partials/message.html", m=view)


@router.post("/m/{message_id}/regenerate")
async def regenerate(message_id: str, request: Request, db: DbDep, user: OptionalUser) -> Response:
    if user is None:
        return to_login(request)
    oid = parse_id(message_id)
    try:
        if oid is None:
            raise ChatError("message_not_found", 404)
        sent = await service.regenerate(get_chat(request), db, user_id=user["_id"], message_id=oid,
                                        params=answer_style_parameters(user))
    except ChatError as exc:
        return _error(request, exc)
    view = message_view(sent.assistant_message, is_last=True, locale=locale(request))
    return render(request, "partials/message.html", m=view)


@router.post("/m/{message_id}/feedback")
async def feedback(
    message_id: str, request: Request, db: DbDep, user: OptionalUser, rating: Annotated[int, Form()],
) -> Response:
    if user is None:
        return to_login(request)
    oid = parse_id(message_id)
    try:
        if oid is None or rating not in (1, -1):
            raise ChatError("message_not_found" if oid is None else "validation_error", 404 if oid is None else 422)
        message = await service.give_feedback(db, user_id=user["_id"], message_id=oid, rating=rating, comment=None)
    except ChatError as exc:
        return _error(request, exc)
    return render(request, "partials/feedback.html", m={"id": message_id, "feedback": message["feedback"]["rating"]})


@router.get("/chat/conversations")
async def conversation_list(
    request: Request, db: DbDep, user: OptionalUser, q: Annotated[str, Query(max_length=SEARCH_MAX_CHARS)] = "",
) -> Response:
    """The sidebar's list items, only those matching the search box when it holds text."""
    if user is None:
        return to_login(request)
    text = search_text(q)
    docs = await conversations_repo.list_conversations(db=db, user_id=user["_id"], limit=SIDEBAR_LIMIT,
                                                       containing=text)
    return render(request, "partials/conversation_list.html", conversations=[conversation_view(d) for d in docs],
                  current_id=_current_id(request), searched=text is not None)


@router.get("/c/{conversation_id}/rename")
async def rename_form(conversation_id: str, request: Request, db: DbDep, user: OptionalUser) -> Response:
    return await _item(request, db, user, conversation_id, "partials/conversation_rename.html")


@router.get("/c/{conversation_id}/item")
async def conversation_item(conversation_id: str, request: Request, db: DbDep, user: OptionalUser) -> Response:
    return await _item(request, db, user, conversation_id, "partials/conversation_item.html")


async def _item(request: Request, db: Db, user: dict[str, Any] | None, conversation_id: str, template: str) -> Response:
    if user is None:
        return to_login(request)
    conversation = await _conversation(db, user, conversation_id)
    if conversation is None:
        return PlainTextResponse("", status_code=404)
    return render(request, template, c=conversation_view(conversation), current_id=_current_id(request))


def _current_id(request: Request) -> str | None:
    """The conversation open in the page that made this htmx call (HX-Current-URL)."""
    url = request.headers.get("hx-current-url", "")
    path = url.split("://", 1)[-1].partition("/")[2]
    return path[2:26] if path.startswith("c/") else None


@router.post("/c/{conversation_id}/rename")
async def rename(
    conversation_id: str, request: Request, db: DbDep, user: OptionalUser, title: Annotated[str, Form(max_length=1000)],
) -> Response:
    if user is None:
        return to_login(request)
    try:
        clean = TypeAdapter(Title).validate_python(title)
    except ValidationError:
        return PlainTextResponse(ChatError("validation_error").message(locale(request)), status_code=422)
    oid = parse_id(conversation_id)
    doc = None if oid is None else await conversations_repo.update_conversation(
        db=db, user_id=user["_id"], conversation_id=oid, changes={"title": clean[: request.app.state.settings.max_title_chars]})
    if doc is None:
        return PlainTextResponse("", status_code=404)
    view = conversation_view(doc)
    current = _current_id(request)
    item = render(request, "partials/conversation_item.html", c=view, current_id=current)
    if current != view["id"]:
        return item
    title_html = render(request, "partials/chat_title.html", conversation=view, oob=True)
    return HTMLResponse(bytes(item.body) + bytes(title_html.body))


@router.delete("/c/{conversation_id}")
async def delete(conversation_id: str, request: Request, db: DbDep, user: OptionalUser) -> Response:
    if user is None:
        return to_login(request)
    oid = parse_id(conversation_id)
    chat = get_chat(request)
    running = chat.registry.running_in(conversation_id)
    if running is not None:  # stop its answer first so nothing writes into a deleted conversation
        await service.stop(chat, db, user_id=user["_id"], message_id=parse_id(running.message_id))  # type: ignore[arg-type]
    if oid is not None:
        await conversations_repo.delete_conversation(db=db, user_id=user["_id"], conversation_id=oid)
    headers = {"HX-Redirect": "/chat"} if _current_id(request) == conversation_id else {}
    return HTMLResponse("", headers=headers)
