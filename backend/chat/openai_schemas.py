"""Bodies of the OpenAI-compatible API (/v1/chat/completions), the subset KoVR honours."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool

from backend.core.errors import openai_error
from backend.core.text import NfcStr

__all__ = ["ChatCompletionRequest", "ChatMessage", "openai_error"]


class ImageURL(BaseModel):
    model_config = ConfigDict(extra="ignore")
    url: NfcStr = Field(max_length=15_000_000)
    detail: NfcStr | None = None


class TextPart(BaseModel):
    type: Literal["text"]
    text: NfcStr


class ImagePart(BaseModel):
    type: Literal["image_url"]
    image_url: ImageURL


Part = Annotated[TextPart | ImagePart, Field(discriminator="type")]


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="ignore")
    role: Literal["system", "developer", "user", "assistant"]
    content: NfcStr | list[Part] | None = None

    def text(self) -> str:
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        return "\n".join(p.text for p in self.content if isinstance(p, TextPart))

    def image_urls(self) -> list[str]:
        if not isinstance(self.content, list):
            return []
        return [p.image_url.url for p in self.content if isinstance(p, ImagePart)]


class StreamOptions(BaseModel):
    include_usage: StrictBool = False


class ChatCompletionRequest(BaseModel):
    # Unknown OpenAI options (logit_bias, tools, ...) are ignored rather than refused, as most servers do.
    model_config = ConfigDict(extra="ignore")
    model: NfcStr = Field(default="kovr", max_length=200)
    messages: list[ChatMessage] = Field(min_length=1, max_length=500)
    stream: StrictBool = False  # "yes" or 1 is a mistake, not a request to stream
    stream_options: StreamOptions | None = None
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    top_p: float | None = Field(default=None, gt=0.0, le=1.0)
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    stop: NfcStr | list[NfcStr] | None = None
    seed: int | None = Field(default=None, ge=0, le=2**32 - 1)
    n: int = Field(default=1, ge=1, le=1)

    def stop_list(self) -> list[str]:
        if self.stop is None:
            return []
        return [self.stop] if isinstance(self.stop, str) else [s for s in self.stop if s][:4]

    def token_limit(self) -> int | None:
        return self.max_completion_tokens or self.max_tokens
