"""Stored documents → the small dicts templates use (never a raw document in a template)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from backend.core.i18n import message_for


def conversation_view(doc: Mapping[str, Any]) -> dict[str, Any]:
    return {"id": str(doc["_id"]), "title": doc["title"]}


def message_view(doc: Mapping[str, Any], *, is_last: bool, locale: str) -> dict[str, Any]:
    alternatives = doc.get("alternatives") or []
    view: dict[str, Any] = {
        "id": str(doc["_id"]), "role": doc["role"], "content": doc["content"], "status": doc["status"],
        "image_ids": [str(i) for i in doc.get("image_ids", [])],
        "alternatives": [{"content": a.get("content", "")} for a in alternatives],
        "feedback": (doc.get("feedback") or {}).get("rating"), "is_last": is_last,
        "error_message": message_for(doc["error"], locale) if doc.get("error") else None,
    }
    if doc["status"] == "streaming":
        # Resume after what this page already shows (event ids are "<attempt>-<characters>").
        after = f"{len(alternatives)}-{len(doc['content'])}"
        view["stream_url"] = f"/api/v1/messages/{view['id']}/events?after={after}"
    return view


def message_views(docs: Sequence[Mapping[str, Any]], locale: str) -> list[dict[str, Any]]:
    last_assistant = max((i for i, d in enumerate(docs) if d["role"] == "assistant"), default=-1)
    is_tail = last_assistant == len(docs) - 1
    return [message_view(d, is_last=is_tail and i == last_assistant, locale=locale) for i, d in enumerate(docs)]
