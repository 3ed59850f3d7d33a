"""Rated conversations seeded directly (sync pymongo), in the message-tree shape: every message has
`parent_id`, regenerated answers are siblings. Shared by the export and the fine-tune recipe tests."""

from __future__ import annotations

import datetime as dt
import unicodedata
from dataclasses import dataclass
from typing import Any

from bson import ObjectId
from pymongo.database import Database

GREETING, GREETING_ANSWER = "안녕하세요", "안녕하세요! 무엇을 도와드릴까요?"
PII_QUESTION = ("제 메일은 hong.gildong@example.com 이고 전화는 010-1234-5678, 회사는 +82 10-9876-5432, "
                "주민번호는 900101-1234567 입니다. 제주도 여행지를 추천해 주세요.")
CHOSEN, REJECTED = "성산일출봉과 우도를 추천합니다.", "잘 모르겠습니다."
NFD_QUESTION = unicodedata.normalize("NFD", "한글은 누가 만들었나요?")
NFD_ANSWER = unicodedata.normalize("NFD", "세종대왕이 훈민정음을 만들었습니다.")


@dataclass
class Seeded:
    consenting: ObjectId
    refusing: ObjectId


class _Conversation:
    def __init__(self, db: Database[Any], user_id: ObjectId, start: dt.datetime) -> None:
        self.db, self.user_id, self.id, self.at = db, user_id, ObjectId(), start
        db.conversations.insert_one({"_id": self.id, "user_id": user_id, "title": "시드", "created_at": start,
                                     "updated_at": start, "model": None, "message_count": 0})

    def add(self, role: str, content: str, parent: ObjectId | None, rating: int | None = None,
            status: str = "complete") -> ObjectId:
        self.at += dt.timedelta(seconds=1)
        doc: dict[str, Any] = {"_id": ObjectId(), "conversation_id": self.id, "user_id": self.user_id, "role": role,
                               "content": content, "status": status, "image_ids": [], "created_at": self.at,
                               "updated_at": self.at, "parent_id": parent}
        if rating is not None:
            doc["feedback"] = {"rating": rating, "comment": None}
        self.db.messages.insert_one(doc)
        return ObjectId(doc["_id"])


def _user(db: Database[Any], consent: bool | None) -> ObjectId:
    doc: dict[str, Any] = {"email": f"{ObjectId()}@example.com", "password_hash": "x", "display_name": "시드",
                           "role": "user", "disabled": False, "created_at": dt.datetime.now(dt.UTC)}
    if consent is not None:
        doc["training_consent"] = consent
    return ObjectId(db.users.insert_one(doc).inserted_id)


def seed(db: Database[Any], start: dt.datetime) -> Seeded:
    """One consenting user: 3 SFT records, 1 preference pair, and one each of duplicate, too long,
    empty, incomplete; one user without consent (1 rated answer) and one who never decided (1)."""
    yes, no, undecided = _user(db, True), _user(db, False), _user(db, None)
    chat = _Conversation(db, yes, start)
    hello = chat.add("user", GREETING, None)
    answer = chat.add("assistant", GREETING_ANSWER, hello, rating=1)
    question = chat.add("user", PII_QUESTION, answer)
    chat.add("assistant", CHOSEN, question, rating=1)
    chat.add("assistant", REJECTED, question, rating=-1)
    chat.add("assistant", "한라산도 좋습니다.", question)  # not rated: in no pair
    again = _Conversation(db, yes, start)
    again.add("assistant", GREETING_ANSWER, again.add("user", GREETING, None), rating=1)  # duplicate
    odd = _Conversation(db, yes, start)
    odd.add("assistant", "가" * 9000, odd.add("user", "길게 써 주세요", None), rating=1)  # too long
    odd.add("assistant", "   ", odd.add("user", "빈 답", None), rating=1)  # empty
    odd.add("assistant", "중간에", odd.add("user", "멈춘 답", None), rating=1, status="stopped")  # incomplete
    nfd = _Conversation(db, yes, start)
    nfd.add("assistant", NFD_ANSWER, nfd.add("user", NFD_QUESTION, None), rating=1)
    for other in (no, undecided):
        theirs = _Conversation(db, other, start)
        theirs.add("assistant", "비밀 답", theirs.add("user", "비밀 질문 secret@example.com", None), rating=1)
    return Seeded(yes, no)
