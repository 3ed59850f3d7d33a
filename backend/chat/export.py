"""A conversation as one Markdown file for the user to keep (`GET /api/v1/conversations/{id}/export`)."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import quote

from backend.core.clock import as_utc

_LABELS: dict[str, dict[str, str]] = {
    "ko": {"user": "사용자", "assistant": "KoVR", "system": "시스템", "created": "만든 때", "exported": "내보낸 때",
           "images": "이미지 {n}장", "streaming": "답변을 만드는 중이었습니다", "stopped": "생성을 중지했습니다",
           "error": "답변을 만들지 못했습니다", "complete": ""},
    "en": {"user": "User", "assistant": "KoVR", "system": "System", "created": "Created", "exported": "Exported",
           "images": "{n} image(s)", "streaming": "the answer was still being written", "stopped": "stopped",
           "error": "the answer failed", "complete": ""},
}
# Characters that file systems or Content-Disposition cannot carry in a name.
_UNSAFE_NAME = re.compile(r'[\x00-\x1f\x7f/\\:*?"<>|]+')


def conversation_markdown(conversation: Mapping[str, Any], messages: Sequence[Mapping[str, Any]], locale: str,
                          exported_at: dt.datetime) -> str:
    labels = _LABELS.get(locale, _LABELS["ko"])
    lines = [f"# {conversation['title']}", "",
             f"- {labels['created']}: {_when(conversation['created_at'])}",
             f"- {labels['exported']}: {_when(exported_at)}", ""]
    for message in messages:
        lines += [f"## {labels.get(message['role'], message['role'])} · {_when(message['created_at'])}", ""]
        if message.get("image_ids"):
            lines += [f"[{labels['images'].format(n=len(message['image_ids']))}]", ""]
        if message["content"]:
            lines += [message["content"].rstrip(), ""]
        if labels.get(message["status"]):
            lines += [f"_({labels[message['status']]})_", ""]
    return "\n".join(lines)


def download_headers(title: str) -> dict[str, str]:
    """An attachment named after the title; RFC 6266's filename* carries the Korean, the plain
    filename is the ASCII fallback for old clients."""
    name = _UNSAFE_NAME.sub("_", title).strip(" ._")[:80] or "conversation"
    return {"Content-Disposition": f"attachment; filename=\"kovr-conversation.md\"; "
                                   f"filename*=UTF-8''{quote(name + '.md', safe='')}"}


def _when(value: dt.datetime) -> str:
    return as_utc(value).strftime("%Y-%m-%d %H:%M UTC")
