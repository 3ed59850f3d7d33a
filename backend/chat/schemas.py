"""Request bodies of the chat API (limits also checked against the settings in the service)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from backend.core.text import NfcStr

ObjectIdText = Annotated[str, Field(pattern=r"^[0-9a-f]{24}$")]


class ChatParameters(BaseModel):
    model_config = ConfigDict(extra="forbid")
    temperature: float | None = Field(default=None, ge=0.0, le=2.0, description="0 = greedy")
    top_p: float | None = Field(default=None, gt=0.0, le=1.0)
    max_new_tokens: int | None = Field(default=None, ge=1, le=4096)
    seed: int | None = Field(default=None, ge=0, le=2**32 - 1)


class MessageCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    content: NfcStr = Field(default="", max_length=100_000)
    image_ids: list[ObjectIdText] = Field(default_factory=list, max_length=16)
    parameters: ChatParameters = Field(default_factory=ChatParameters)


class RegenerateRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    parameters: ChatParameters = Field(default_factory=ChatParameters)


class FeedbackCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    rating: Literal[1, -1] = Field(description="1 (good) or -1 (bad)")
    comment: NfcStr | None = Field(default=None, max_length=2000)


class ImagePublic(BaseModel):
    id: str
    content_type: str
    size: int
    width: int
    height: int
