"""Text Generation Inference (TGI) wire types, written once (pure pydantic, importable without torch).

Field names, defaults and validation messages follow TGI's router (`router/src/lib.rs`,
`router/src/validation.rs`) so that the `text-generation` client and any TGI consumer work
unchanged against model_server. Range checks that need the served model's limits
(max_new_tokens, truncate, input length) live in :func:`check_limits`.
"""

from __future__ import annotations

import math
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

# TGI's router default for `max_stop_sequences`.
MAX_STOP_SEQUENCES = 4


MIN_TEMPERATURE = 1e-3
MAX_TEMPERATURE = 100.0
MAX_REPETITION_PENALTY = 100.0


class WireValidationError(ValueError):
    """A request TGI would reject with 422 {"error_type": "validation"}; the message is TGI's."""


class GenerateParameters(BaseModel):
    """TGI's `GenerateParameters`; unknown keys are refused rather than silently ignored."""

    model_config = ConfigDict(extra="forbid")

    best_of: int | None = None
    temperature: float | None = None
    repetition_penalty: float | None = None
    frequency_penalty: float | None = None
    top_k: int | None = None
    top_p: float | None = None
    typical_p: float | None = None
    do_sample: bool = False
    max_new_tokens: int | None = None
    return_full_text: bool | None = None
    stop: list[str] = Field(default_factory=list)
    truncate: int | None = None
    watermark: bool = False
    details: bool = False
    decoder_input_details: bool = False
    seed: int | None = None
    top_n_tokens: int | None = None
    grammar: dict[str, Any] | None = None
    adapter_id: str | None = None

    @field_validator("stop", mode="before")
    @classmethod
    def _none_stop(cls, value: object) -> object:
        return [] if value is None else value

    @property
    def sampling(self) -> bool:
        """TGI samples when asked to or when any warper is set (server/text_generation_server/utils/tokens.py)."""
        return (
            self.do_sample
            or (self.temperature is not None and self.temperature != 1.0)
            or (self.top_k is not None and self.top_k != 0)
            or (self.top_p is not None and self.top_p < 1.0)
            or (self.typical_p is not None and self.typical_p < 1.0)
        )

    def check(self) -> None:
        """TGI's validation of values that do not depend on the model (messages copied verbatim)."""
        for message in self._problems():
            raise WireValidationError(message)

    def _problems(self) -> list[str]:
        problems: list[str] = []
        # JSON's 1e999 is infinity in Python, and NaN/Infinity literals are refused at parsing:
        # a non-finite value would reach the sampler as NaN probabilities.
        for name in ("temperature", "repetition_penalty", "frequency_penalty", "top_p", "typical_p"):
            value = getattr(self, name)
            if value is not None and not math.isfinite(value):
                problems.append(f"`{name}` must be a finite number")
        if problems:
            return problems
        if self.best_of is not None and self.best_of != 1:
            problems.append("`best_of` != 1 is not allowed for this endpoint")
        if self.temperature is not None and self.temperature <= 0.0:
            problems.append("`temperature` must be strictly positive")
        elif self.temperature is not None and not MIN_TEMPERATURE <= self.temperature <= MAX_TEMPERATURE:
            # Beyond TGI: logits / 1e-300 overflow to inf (NaN probabilities).
            problems.append(f"`temperature` must be >= {MIN_TEMPERATURE} and <= {MAX_TEMPERATURE}")
        if self.repetition_penalty is not None and self.repetition_penalty <= 0.0:
            problems.append("`repetition_penalty` must be strictly positive")
        elif self.repetition_penalty is not None and self.repetition_penalty > MAX_REPETITION_PENALTY:
            problems.append(f"`repetition_penalty` must be <= {MAX_REPETITION_PENALTY}")
        if self.frequency_penalty is not None and not -2.0 <= self.frequency_penalty <= 2.0:
            problems.append("`frequency_penalty` must be >= -2.0 and <= 2.0")
        if self.top_p is not None and not 0.0 < self.top_p < 1.0:
            problems.append("`top_p` must be > 0.0 and < 1.0")
        if self.typical_p is not None and not 0.0 < self.typical_p < 1.0:
            problems.append("`typical_p` must be > 0.0 and < 1.0")
        if self.top_k is not None and self.top_k <= 0:
            problems.append("`top_k` must be strictly positive")
        if self.max_new_tokens is not None and self.max_new_tokens <= 0:
            problems.append("`max_new_tokens` must be strictly positive")
        if len(self.stop) > MAX_STOP_SEQUENCES:
            problems.append(f"`stop` supports up to {MAX_STOP_SEQUENCES} stop sequences. Given: {len(self.stop)}")
        if any(not s for s in self.stop):
            problems.append("`stop` sequences cannot be empty")
        if self.seed is not None and not 0 <= self.seed < 2**64:
            problems.append("`seed` must be >= 0 and < 2^64")
        if self.top_n_tokens:
            problems.append("`top_n_tokens` != 0 is not allowed for this endpoint")
        if self.grammar is not None:
            problems.append("grammar is not supported")
        if self.watermark:
            problems.append("`watermark` is not supported by this server")
        if self.adapter_id:
            problems.append("`adapter_id` is not supported by this server")
        return problems


def check_limits(
    params: GenerateParameters, *, max_input_tokens: int, max_total_tokens: int, max_new_tokens_limit: int
) -> None:
    """TGI's limit checks that need the served model's configuration."""
    if params.truncate is not None and not 0 < params.truncate <= max_input_tokens:
        raise WireValidationError(
            f"`truncate` must be strictly positive and less than {max_input_tokens}. Given: {params.truncate}"
        )
    if params.max_new_tokens is not None and params.max_new_tokens > max_new_tokens_limit:
        raise WireValidationError(
            f"`max_new_tokens` must be <= {max_new_tokens_limit}. Given: {params.max_new_tokens}"
        )


def check_input_length(
    input_length: int, max_new_tokens: int, *, max_input_tokens: int, max_total_tokens: int
) -> None:
    """After tokenisation (and truncation): the two length errors of TGI's `validate_input`."""
    if input_length + max_new_tokens > max_total_tokens:
        raise WireValidationError(
            f"`inputs` tokens + `max_new_tokens` must be <= {max_total_tokens}. "
            f"Given: {input_length} `inputs` tokens and {max_new_tokens} `max_new_tokens`"
        )
    if input_length > max_input_tokens:
        raise WireValidationError(
            f"`inputs` must have less than {max_input_tokens} tokens. Given: {input_length}"
        )


class GenerateRequest(BaseModel):
    """Body of POST /generate and /generate_stream."""

    model_config = ConfigDict(extra="forbid")

    inputs: str
    parameters: GenerateParameters = Field(default_factory=GenerateParameters)

    @field_validator("parameters", mode="before")
    @classmethod
    def _none_parameters(cls, value: object) -> object:
        return {} if value is None else value

    def check(self) -> None:
        if not self.inputs:
            raise WireValidationError("`inputs` cannot be empty")
        self.parameters.check()


class CompatGenerateRequest(GenerateRequest):
    """Body of POST / (what the `text-generation` client sends): a `stream` switch on top."""

    stream: bool = False


class FinishReason(StrEnum):
    length = "length"
    eos_token = "eos_token"
    stop_sequence = "stop_sequence"


class Token(BaseModel):
    id: int
    text: str
    logprob: float | None = None
    special: bool = False


class PrefillToken(BaseModel):
    id: int
    text: str
    logprob: float | None = None


class Details(BaseModel):
    finish_reason: FinishReason
    generated_tokens: int
    seed: int | None = None
    prefill: list[PrefillToken] = Field(default_factory=list)
    tokens: list[Token] = Field(default_factory=list)


class GenerateResponse(BaseModel):
    generated_text: str
    details: Details | None = None

    def to_wire(self) -> dict[str, Any]:
        """TGI leaves `details` out (rather than null) when it was not asked for."""
        return self.model_dump(mode="json", exclude={"details"} if self.details is None else set())


class StreamDetails(BaseModel):
    finish_reason: FinishReason
    generated_tokens: int
    seed: int | None = None
    input_length: int


class StreamResponse(BaseModel):
    """One SSE event of /generate_stream; the last one carries generated_text and details."""

    index: int
    token: Token
    generated_text: str | None = None
    details: StreamDetails | None = None


class ErrorResponse(BaseModel):
    """Every error body: error_type is "validation", "generation", "overloaded" or "healthcheck"."""

    error: str
    error_type: str


class SimpleToken(BaseModel):
    """One element of POST /tokenize's answer (character offsets into the input)."""

    id: int
    text: str
    start: int
    stop: int


class Info(BaseModel):
    """GET /info: TGI's fields plus ours (dtype, device, images, prompt template, demo flag)."""

    model_id: str
    model_sha: str | None = None
    model_dtype: str
    model_device_type: str
    model_pipeline_tag: str | None = "text-generation"
    max_concurrent_requests: int
    max_best_of: int = 1
    max_stop_sequences: int = MAX_STOP_SEQUENCES
    max_input_tokens: int
    max_total_tokens: int
    validation_workers: int = 1
    max_client_batch_size: int = 1
    router: str = "kovr-model-server"
    version: str
    sha: str | None = None
    docker_label: str | None = None
    # KoVR additions (stock TGI does not send them; clients treat them as optional).
    supports_images: bool = False
    image_prefix_tokens: int = 0  # positions one image takes in the prompt (align model prefix)
    is_demo: bool = False
    prompt_template: dict[str, Any] | None = None
    max_queue: int | None = None
    upstream: str | None = None
