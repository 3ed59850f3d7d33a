"""Request bodies of the chat API (limits also checked against the settings in the service)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from backend.core.text import NfcStr
from backend.schemas.users import AnswerStyle

ObjectIdText = Annotated[str, Field(pattern=r"^[0-9a-f]{24}$")]


class ChatParameters(BaseModel):
    model_config = ConfigDict(extra="forbid")
    temperature: float | None = Field(default=None, ge=0.0, le=2.0, description="0 = greedy")
    top_p: float | None = Field(default=None, gt=0.0, le=1.0)
    max_new_tokens: int | None = Field(default=None, ge=1, le=4096)
    seed: int | None = Field(default=None, ge=0, le=2**32 - 1)


# The chat page's sampling, chosen per user in the settings (users.answer_style); the API takes
# explicit parameters instead. "balanced" leaves the service's defaults (temperature 0.7, top-p 0.9).
ANSWER_STYLES: dict[AnswerStyle, ChatParameters] = {
    "precise": ChatParameters(temperature=0.0),
    "balanced": ChatParameters(),
    "creative": ChatParameters(temperature=1.0, top_p=0.95),
}


def answer_style_parameters(user: dict[str, Any]) -> ChatParameters:
    return ANSWER_STYLES.get(user.get("answer_style", "balanced"), ANSWER_STYLES["balanced"]).model_copy()


class MessageCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={
        # What the server checks, in the schema too: some text that is not only white space, or an image.
        "anyOf": [{"required": ["content"], "properties": {"content": {"pattern": "\\S"}}},
                  {"required": ["image_ids"], "properties": {"image_ids": {"minItems": 1}}}],
    })
    content: NfcStr = Field(default="", max_length=100_000)
    image_ids: list[ObjectIdText] = Field(default_factory=list, max_length=16)
    parameters: ChatParameters = Field(default_factory=ChatParameters)


class RegenerateRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    parameters: ChatParameters = Field(default_factory=ChatParameters)


class EditRequest(BaseModel):
    """Edit and resend a user message: a new version of it (a branch) whose answer streams back."""

    model_config = ConfigDict(extra="forbid")
    content: NfcStr = Field(default="", max_length=100_000)
    image_ids: list[ObjectIdText] | None = Field(default=None, max_length=16,
                                                 description="omitted: the edited message's images")
    parameters: ChatParameters = Field(default_factory=ChatParameters)


class ContinueRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    parameters: ChatParameters = Field(default_factory=ChatParameters,
                                       description="unset sampling fields keep the answer's own")


class BranchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    message_id: ObjectIdText = Field(description="any message of the branch to show")


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
