"""Feedback → training data: one module behind `kovr export-feedback` and the admin download.

Only users who turned on "내 대화를 모델 개선에 사용" are read. Their rated answers become SFT
records (`sft.jsonl`, KULLM fields, positively rated only) and preference pairs
(`preference.jsonl`, sibling answers rated differently); `data_summary.json` says how many of
each were written and how many were left out and why.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import zipfile
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bson import ObjectId

from backend.chat import training_data
from backend.chat.training_data import Drops, Rated
from backend.core.clock import utcnow
from backend.db import training_data as training_repo
from backend.db.client import Db
from backend.db.models import MessageDoc

SFT_FILE, PREFERENCE_FILE, SUMMARY_FILE = "sft.jsonl", "preference.jsonl", "data_summary.json"


@dataclass(frozen=True)
class ExportOptions:
    since: dt.datetime | None = None
    min_rating: int = 1


@dataclass
class FeedbackExport:
    sft: list[dict[str, str]] = field(default_factory=list)
    preference: list[dict[str, str]] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)


async def build_export(db: Db, options: ExportOptions) -> FeedbackExport:
    users = await training_repo.consenting_user_ids(db=db)
    rated: list[Rated] = []
    for user_id in users:
        rated += await _rated_of(db, user_id, options.since)
    drops, clean = Drops(), training_data.Cleaner()
    drops["no_consent"] = await training_repo.count_rated_answers(db=db, since=options.since) - len(rated)
    sft = training_data.sft_records(rated, min_rating=options.min_rating, drops=drops, clean=clean)
    pairs = training_data.preference_pairs(rated, drops=drops, clean=clean)
    summary = _summary(options, users=len(users), rated=len(rated), sft=len(sft), pairs=len(pairs), drops=drops,
                       pii=clean.masked)
    return FeedbackExport(sft, pairs, summary)


async def _rated_of(db: Db, user_id: ObjectId, since: dt.datetime | None) -> list[Rated]:
    """The user's rated answers, each with its path; a conversation is read once for all of them."""
    answers = await training_repo.rated_answers(db=db, user_id=user_id, since=since)
    conversations: dict[ObjectId, list[MessageDoc]] = {}
    found: list[Rated] = []
    for answer in answers:
        conversation_id = answer["conversation_id"]
        if conversation_id not in conversations:
            conversations[conversation_id] = await training_repo.conversation_messages(
                db=db, user_id=user_id, conversation_id=conversation_id)
        found.append(Rated(answer, path_to(conversations[conversation_id], answer)))
    return found


def path_to(messages: Sequence[Mapping[str, Any]], message: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """Root → message. Along `parent_id` when the message has one (the message tree); a message
    stored before the tree has no parent field and its conversation is linear: what came before it."""
    if "parent_id" not in message:
        key = (message["created_at"], message["_id"])
        return [m for m in messages if (m["created_at"], m["_id"]) < key] + [message]
    by_id = {m["_id"]: m for m in messages}
    path: list[Mapping[str, Any]] = [message]
    while (parent := by_id.get(path[-1].get("parent_id"))) is not None and len(path) <= len(messages):
        path.append(parent)  # the length bound stops a (corrupt) cycle
    return path[::-1]


def _summary(options: ExportOptions, *, users: int, rated: int, sft: int, pairs: int, drops: Drops,
             pii: Counter[str]) -> dict[str, Any]:
    return {
        "generated_at": utcnow().isoformat(), "since": options.since.isoformat() if options.since else None,
        "min_rating": options.min_rating, "consenting_users": users, "rated_answers_read": rated,
        "files": {SFT_FILE: sft, PREFERENCE_FILE: pairs},
        "dropped": {reason: drops[reason] for reason in ("no_consent", "incomplete", "empty", "too_long", "duplicate")},
        "pii_masked": {kind: pii[kind] for kind in ("email", "phone", "rrn")},
        "limits": {"max_instruction_chars": training_data.MAX_INSTRUCTION_CHARS,
                   "max_output_chars": training_data.MAX_OUTPUT_CHARS,
                   "max_context_turns": training_data.MAX_CONTEXT_TURNS,
                   "max_context_chars": training_data.MAX_CONTEXT_CHARS},
    }


def file_contents(export: FeedbackExport) -> dict[str, str]:
    """The three files' text: JSON Lines (one record a line, Korean kept as is) and the summary."""
    return {SFT_FILE: _jsonl(export.sft), PREFERENCE_FILE: _jsonl(export.preference),
            SUMMARY_FILE: json.dumps(export.summary, ensure_ascii=False, indent=2) + "\n"}


def _jsonl(records: list[dict[str, str]]) -> str:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)


def write_export(export: FeedbackExport, folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, text in file_contents(export).items():
        (folder / name).write_text(text, encoding="utf-8")
        paths.append(folder / name)
    return paths


def zip_export(export: FeedbackExport) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, text in file_contents(export).items():
            archive.writestr(name, text)
    return buffer.getvalue()
