"""The stateless completion use case (`/v1/chat/completions`): OpenAI messages in, text out.

Stores nothing and runs inside the request (a client that goes away cancels it); the model turn
itself is the chat's own (`backend.chat.turn`), with the same prompt, trimming and stop handling.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from backend.chat.openai_schemas import ChatCompletionRequest, ChatMessage
from backend.chat.prompt import Exchange
from backend.chat.turn import TurnOutcome, TurnRequest, model_turn
from backend.core.errors import AppError
from backend.db.client import Db
from backend.db.usage import Reservation
from backend.services import images as images_service
from backend.services import quota
from backend.services.chat import ChatServices
from kovr.settings import Settings


async def turn_request(body: ChatCompletionRequest, settings: Settings) -> TurnRequest:
    """Checked before the response starts: every refusal is a plain HTTP error."""
    max_new_tokens = body.token_limit() or settings.chat_default_max_new_tokens
    if max_new_tokens > settings.max_new_tokens_limit:
        raise AppError("invalid_parameters")
    return await _turn(body, settings, max_new_tokens)


async def complete(chat: ChatServices, db: Db, turn: TurnRequest, outcome: TurnOutcome,
                   reservation: Reservation) -> AsyncIterator[str]:
    """The model's pieces; when they end (or the client goes away) the usage is settled."""
    try:
        async for piece in model_turn(chat.model, turn, outcome):
            yield piece
    finally:
        # Shielded: a client that left cancels this generator, and the counts must still be written.
        await asyncio.shield(quota.settle(db, reservation, prompt_tokens=outcome.prompt_tokens,
                                          generated_tokens=outcome.generated_tokens))


async def _turn(body: ChatCompletionRequest, settings: Settings, max_new_tokens: int) -> TurnRequest:
    """OpenAI messages → earlier exchanges + the last user turn (system text leads the first turn)."""
    messages = body.messages
    system = "\n".join(m.text() for m in messages if m.role in ("system", "developer")).strip()
    turns = [m for m in messages if m.role in ("user", "assistant")]
    if not turns or turns[-1].role != "user":
        raise AppError("validation_error", "the last message must be from the user")
    history: list[Exchange] = []
    pending: ChatMessage | None = None
    for message in turns[:-1]:
        if message.role == "user":
            pending = message
        elif pending is not None:
            history.append(Exchange(pending.text(), message.text(), bool(pending.image_urls())))
            pending = None
    last = turns[-1]
    question = last.text().strip()
    if system:
        target = history[0] if history else None
        if target is not None:
            history[0] = Exchange(f"{system}\n\n{target.user}", target.assistant, target.had_images)
        else:
            question = f"{system}\n\n{question}"
    urls = last.image_urls()
    if not question and not urls:
        raise AppError("empty_message")
    if len(question) > settings.max_message_chars:
        raise AppError("message_too_long")
    if len(urls) > settings.chat_max_images_per_message:
        raise AppError("too_many_images")
    return TurnRequest(history=history, question=question, image_uris=await _model_images(urls, settings),
                       max_new_tokens=max_new_tokens, temperature=body.temperature, top_p=body.top_p,
                       seed=body.seed, stop=tuple(body.stop_list()))


async def _model_images(urls: list[str], settings: Settings) -> list[str]:
    uris = []
    for url in urls:
        data = images_service.decode_data_uri(url, max_bytes=settings.max_image_bytes)
        await asyncio.to_thread(images_service.check_image, data, max_bytes=settings.max_image_bytes,
                                max_pixels=settings.max_image_pixels)
        uris.append(await asyncio.to_thread(images_service.model_data_uri, data))
    return uris


