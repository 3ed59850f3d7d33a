"""Pages: the chat screen, sending (htmx), message fragments, conversation rename/delete.

Thin: each handler calls one use case of `backend.services` and renders the result. Errors are
`AppError`s like the API's; the app's one handler turns them into a toast text for htmx.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, Query, Request
from pydantic import TypeAdapter, ValidationError
from starlette.responses import HTMLResponse, RedirectResponse, Response

from backend.chat.schemas import answer_style_parameters
from backend.core.errors import AppError
from backend.core.text import SEARCH_MAX_CHARS, Title
from backend.db.models import ConversationDoc
from backend.http.deps import ChatDep, DbDep, LocaleDep, OptionalUser, SettingsDep
from backend.schemas.conversations import DEFAULT_TITLE
from backend.services import chat as chat_service
from backend.services import conversations as conversations_service
from backend.web.common import to_login, user_view
from backend.web.templating import render
from backend.web.views import conversation_view, message_view, message_views

router = APIRouter(include_in_schema=False)
SIDEBAR_LIMIT = 100
PAGE_MESSAGES = 400


async def _chat_page(request: Request, db: DbDep, user: dict[str, Any], locale: str,
                     conversation: ConversationDoc | None) -> Response:
    sidebar = await conversations_service.list_conversations(db, user_id=user["_id"], limit=SIDEBAR_LIMIT)
    messages: list[dict[str, Any]] = []
    if conversation is not None:
        shown = await conversations_service.recent_messages(db, user_id=user["_id"], conversation=conversation,
                                                            limit=PAGE_MESSAGES)
        messages = message_views(shown, locale)
    current = conversation_view(conversation) if conversation else None
    return render(
        request, "chat.html", user=user_view(user), conversations=[conversation_view(d) for d in sidebar.items],
        conversation=current, current_id=current["id"] if current else None, messages=messages,
        max_chars=request.app.state.settings.max_message_chars,
    )


@router.get("/chat")
async def new_chat(request: Request, db: DbDep, user: OptionalUser, locale: LocaleDep) -> Response:
    if user is None:
        return to_login(request)
    return await _chat_page(request, db, user, locale, None)


@router.get("/c/{conversation_id}")
async def open_chat(conversation_id: str, request: Request, db: DbDep, user: OptionalUser,
                    locale: LocaleDep, m: Annotated[str, Query(max_length=24)] = "") -> Response:
    """The conversation's shown branch; `?m=<message id>` (a link to one message, e.g. one a
    search found on another branch) shows the branch through that message first."""
    if user is None:
        return to_login(request)
    try:
        if m:  # then the plain address, so a reload does not switch back after another switch
            await conversations_service.reveal_message(db, user_id=user["_id"], conversation_id=conversation_id,
                                                       message_id=m)
            return RedirectResponse(f"/c/{conversation_id}", status_code=303)
        conversation = await chat_service.owned_conversation(db, user_id=user["_id"], conversation_id=conversation_id)
    except AppError:
        return RedirectResponse("/chat", status_code=303)
    return await _chat_page(request, db, user, locale, conversation)


@router.post("/chat/send")
async def send(
    request: Request, db: DbDep, chat: ChatDep, user: OptionalUser, locale: LocaleDep,
    content: Annotated[str, Form(max_length=100_000)] = "",
    conversation_id: Annotated[str, Form(max_length=24)] = "",
    image_ids: Annotated[list[str], Form()] = [],  # noqa: B006 - FastAPI form default
) -> Response:
    if user is None:
        return to_login(request)
    params = answer_style_parameters(user)
    if conversation_id:
        conversation = await chat_service.owned_conversation(db, user_id=user["_id"], conversation_id=conversation_id)
        sent = await chat_service.send_message(chat, db, user_id=user["_id"], conversation=conversation,
                                               content=content, image_ids=image_ids, params=params)
    else:
        conversation, started = await chat_service.start_conversation(
            chat, db, user_id=user["_id"], title=DEFAULT_TITLE, content=content, image_ids=image_ids, params=params)
        assert started is not None
        sent = started
    assert sent.user_message is not None
    views = [message_view(sent.user_message, locale=locale), message_view(sent.assistant_message, locale=locale)]
    created = not conversation_id
    response = render(request, "partials/sent.html", sent_messages=views, new_conversation=created,
                      conversation=conversation_view(conversation))
    if created:
        response.headers["HX-Push-Url"] = f"/c/{conversation['_id']}"
    return response


@router.get("/m/{message_id}")
async def message_fragment(message_id: str, request: Request, db: DbDep, user: OptionalUser,
                           locale: LocaleDep) -> Response:
    """One message rendered (Markdown on the server): swapped in when its stream ends."""
    if user is None:
        return to_login(request)
    shown = await conversations_service.message_with_siblings(db, user_id=user["_id"], message_id=message_id)
    return render(request, "partials/message.html", m=message_view(shown.doc, locale=locale, siblings=shown.siblings))


async def _shown_branch(request: Request, db: DbDep, user: dict[str, Any], locale: str,
                        conversation_id: Any) -> Response:
    """The inside of #messages after the branch changed (switch, edit, regenerate, continue, delete)."""
    conversation = await chat_service.owned_conversation(db, user_id=user["_id"], conversation_id=conversation_id)
    shown = await conversations_service.recent_messages(db, user_id=user["_id"], conversation=conversation,
                                                        limit=PAGE_MESSAGES)
    return render(request, "partials/messages.html", messages=message_views(shown, locale))


@router.post("/m/{message_id}/regenerate")
async def regenerate(message_id: str, request: Request, db: DbDep, chat: ChatDep, user: OptionalUser,
                     locale: LocaleDep) -> Response:
    if user is None:
        return to_login(request)
    sent = await chat_service.regenerate(chat, db, user_id=user["_id"], message_id=message_id,
                                         params=answer_style_parameters(user))
    return await _shown_branch(request, db, user, locale, sent.assistant_message["conversation_id"])


@router.post("/m/{message_id}/edit")
async def edit(message_id: str, request: Request, db: DbDep, chat: ChatDep, user: OptionalUser, locale: LocaleDep,
               content: Annotated[str, Form(max_length=100_000)] = "") -> Response:
    if user is None:
        return to_login(request)
    sent = await chat_service.edit_message(chat, db, user_id=user["_id"], message_id=message_id, content=content,
                                           image_ids=None, params=answer_style_parameters(user))
    return await _shown_branch(request, db, user, locale, sent.assistant_message["conversation_id"])


@router.post("/m/{message_id}/continue")
async def continue_answer(message_id: str, request: Request, db: DbDep, chat: ChatDep, user: OptionalUser,
                          locale: LocaleDep) -> Response:
    if user is None:
        return to_login(request)
    sent = await chat_service.continue_answer(chat, db, user_id=user["_id"], message_id=message_id,
                                              params=answer_style_parameters(user))
    return await _shown_branch(request, db, user, locale, sent.assistant_message["conversation_id"])


@router.post("/m/{message_id}/show")
async def show(message_id: str, request: Request, db: DbDep, user: OptionalUser, locale: LocaleDep) -> Response:
    """The switcher: show the branch through this message."""
    if user is None:
        return to_login(request)
    conversation = await conversations_service.show_branch(db, user_id=user["_id"], message_id=message_id)
    return await _shown_branch(request, db, user, locale, conversation["_id"])


@router.delete("/m/{message_id}")
async def delete_message(message_id: str, request: Request, db: DbDep, chat: ChatDep, user: OptionalUser,
                         locale: LocaleDep) -> Response:
    if user is None:
        return to_login(request)
    conversation = await chat_service.delete_message(chat, db, user_id=user["_id"], message_id=message_id)
    return await _shown_branch(request, db, user, locale, conversation["_id"])


@router.post("/m/{message_id}/feedback")
async def feedback(
    message_id: str, request: Request, db: DbDep, user: OptionalUser, rating: Annotated[int, Form()],
) -> Response:
    if user is None:
        return to_login(request)
    if rating not in (1, -1):
        raise AppError("validation_error")
    message = await chat_service.give_feedback(db, user_id=user["_id"], message_id=message_id, rating=rating,
                                               comment=None)
    rated = (message.get("feedback") or {}).get("rating")
    return render(request, "partials/feedback.html", m={"id": message_id, "feedback": rated})


@router.get("/chat/conversations")
async def conversation_list(
    request: Request, db: DbDep, user: OptionalUser, q: Annotated[str, Query(max_length=SEARCH_MAX_CHARS)] = "",
) -> Response:
    """The sidebar's list items, only those matching the search box when it holds text."""
    if user is None:
        return to_login(request)
    page = await conversations_service.list_conversations(db, user_id=user["_id"], limit=SIDEBAR_LIMIT, query=q)
    return render(request, "partials/conversation_list.html", conversations=[conversation_view(d) for d in page.items],
                  current_id=_current_id(request), searched=bool(q.strip()))


@router.get("/c/{conversation_id}/rename")
async def rename_form(conversation_id: str, request: Request, db: DbDep, user: OptionalUser) -> Response:
    return await _item(request, db, user, conversation_id, "partials/conversation_rename.html")


@router.get("/c/{conversation_id}/item")
async def conversation_item(conversation_id: str, request: Request, db: DbDep, user: OptionalUser) -> Response:
    return await _item(request, db, user, conversation_id, "partials/conversation_item.html")


async def _item(request: Request, db: DbDep, user: dict[str, Any] | None, conversation_id: str,
                template: str) -> Response:
    if user is None:
        return to_login(request)
    conversation = await chat_service.owned_conversation(db, user_id=user["_id"], conversation_id=conversation_id)
    return render(request, template, c=conversation_view(conversation), current_id=_current_id(request))


def _current_id(request: Request) -> str | None:
    """The conversation open in the page that made this htmx call (HX-Current-URL)."""
    url = request.headers.get("hx-current-url", "")
    path = url.split("://", 1)[-1].partition("/")[2]
    return path[2:26] if path.startswith("c/") else None


@router.post("/c/{conversation_id}/rename")
async def rename(
    conversation_id: str, request: Request, db: DbDep, settings: SettingsDep, user: OptionalUser,
    title: Annotated[str, Form(max_length=1000)],
) -> Response:
    if user is None:
        return to_login(request)
    try:
        clean = TypeAdapter(Title).validate_python(title)
    except ValidationError:
        raise AppError("validation_error") from None
    doc = await conversations_service.rename(
        db, user_id=user["_id"], conversation_id=conversation_id, title=clean[: settings.max_title_chars],
        max_chars=settings.max_title_chars)
    view = conversation_view(doc)
    current = _current_id(request)
    item = render(request, "partials/conversation_item.html", c=view, current_id=current)
    if current != view["id"]:
        return item
    title_html = render(request, "partials/chat_title.html", conversation=view, oob=True)
    return HTMLResponse(bytes(item.body) + bytes(title_html.body))


@router.delete("/c/{conversation_id}")
async def delete(conversation_id: str, request: Request, db: DbDep, chat: ChatDep, user: OptionalUser) -> Response:
    if user is None:
        return to_login(request)
    await chat_service.delete_conversation(chat, db, user_id=user["_id"], conversation_id=conversation_id)
    headers = {"HX-Redirect": "/chat"} if _current_id(request) == conversation_id else {}
    return HTMLResponse("", headers=headers)
