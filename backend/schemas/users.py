"""Users: sign-up, profile update, password change, public view."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, EmailStr, Field, StringConstraints

from backend.core.text import DisplayName, Password, idna_email, nfc, nfkc_email

Email = Annotated[
    EmailStr, BeforeValidator(nfkc_email), StringConstraints(max_length=254), AfterValidator(idna_email)
]


class UserCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    email: Email
    password: Password
    display_name: DisplayName


# How the chat page samples answers (backend/chat/schemas.py ANSWER_STYLES): greedy, the default, freer.
AnswerStyle = Literal["precise", "balanced", "creative"]


class UserUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    display_name: DisplayName | None = None
    answer_style: AnswerStyle | None = None
    training_consent: bool | None = Field(
        default=None, description="내 대화를 모델 개선에 사용: rated answers may be exported as training data")


class PasswordChange(BaseModel):
    model_config = ConfigDict(extra="forbid")
    current_password: Annotated[str, BeforeValidator(nfc), StringConstraints(min_length=1, max_length=256)]
    new_password: Password


class AccountDeletion(BaseModel):
    model_config = ConfigDict(extra="forbid")
    password: Annotated[str, BeforeValidator(nfc), StringConstraints(min_length=1, max_length=256)]


class UserPublic(BaseModel):
    id: str
    email: str
    display_name: str
    role: Literal["user", "admin"] = "user"
    answer_style: AnswerStyle = "balanced"
    training_consent: bool = False
    created_at: dt.datetime

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> UserPublic:
        return cls(
            id=str(doc["_id"]),
            email=doc["email"],
            display_name=doc["display_name"],
            role=doc.get("role", "user"),
            answer_style=doc.get("answer_style", "balanced"),
            training_consent=bool(doc.get("training_consent", False)),
            created_at=doc["created_at"],
        )
