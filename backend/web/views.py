"""Stored documents → the small dicts templates use (never a raw document in a template)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from backend.core.i18n import message_for


def conversation_view(doc: Mapping[str, Any]) -> dict[str, Any]:
    hit = doc.get("search_hit_id")  # a search result opens on the branch of the message it found
    return {"id": str(doc["_id"]), "title": doc["title"], "href": f"/c/{doc['_id']}" + (f"?m={hit}" if hit else "")}


def message_view(doc: Mapping[str, Any], *, locale: str, siblings: Any = None) -> dict[str, Any]:
    """`siblings`: backend.db.tree.Siblings of the message, for the "2 / 3" switcher."""
    view: dict[str, Any] = {
        "id": str(doc["_id"]), "role": doc["role"], "content": doc["content"], "status": doc["status"],
        "conversation_id": str(doc["conversation_id"]),
        "image_ids": [str(i) for i in doc.get("image_ids", [])],
        "feedback": (doc.get("feedback") or {}).get("rating"),
        "error_message": message_for(doc["error"], locale) if doc.get("error") else None,
        # "계속": an answer cut off by the length limit (the service also checks it ends its branch).
        "can_continue": doc["status"] == "complete" and doc.get("finish_reason") == "length",
        "switcher": _switcher(siblings),
    }
    if doc["status"] == "streaming":
        # Resume after what this page already shows (event ids are "<attempt>-<characters>").
        view["stream_url"] = f"/api/v1/messages/{view['id']}/events?after={doc.get('attempt', 0)}-{len(doc['content'])}"
    return view


def _switcher(siblings: Any) -> dict[str, Any] | None:
    if siblings is None or siblings.count < 2:
        return None
    ids, at = [str(i) for i in siblings.ids], siblings.index - 1
    return {"index": siblings.index, "count": siblings.count,
            "prev_id": ids[at - 1] if at > 0 else None, "next_id": ids[at + 1] if at + 1 < len(ids) else None}


def message_views(shown: Sequence[Any], locale: str) -> list[dict[str, Any]]:
    """The shown branch (services.conversations.Shown items); only its last message may continue."""
    views = [message_view(s.doc, locale=locale, siblings=s.siblings) for s in shown]
    for view in views[:-1]:
        view["can_continue"] = False
    return views
