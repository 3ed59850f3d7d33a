"""The edge between the engine's token ids and TGI's wire types (one object per request).

Token texts come from the UTF-8 safe incremental decoder and the stop-sequence matcher, so the
concatenated `token.text` of a stream always equals its final `generated_text`. Special tokens
add no text of their own (not even "<|endoftext|>"). The last event may carry text that was held
back because it looked like the start of a stop sequence; when that last token is the EOS token it
is then marked `special: false`, so clients that skip special tokens (the TGI client's own
example does) still receive every character.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from model_server.detokenize import Decodes, IncrementalDecoder, StopMatcher
from model_server.engine import TokenEvent
from model_server.wire import FinishReason, StreamDetails, StreamResponse, Token


@dataclass
class StreamState:
    tokenizer: Decodes
    prompt_ids: list[int]
    stops: list[str]
    input_length: int
    seed: int | None
    prefix: str = ""  # the prompt, when return_full_text
    tokens: list[Token] = field(default_factory=list)
    text: str = ""
    finish: FinishReason | None = None

    def __post_init__(self) -> None:
        self._decoder = IncrementalDecoder(self.tokenizer, self.prompt_ids)
        self._stops = StopMatcher(self.stops)

    @property
    def finished(self) -> bool:
        return self.finish is not None

    def accept(self, event: TokenEvent) -> StreamResponse:
        """The stream event for this token (the final one when the request ends with it)."""
        raw = "" if event.special else self._decoder.push(event.id)
        if event.finish is not None:
            raw += self._decoder.flush()
        released = self._stops.push(raw)
        finish = event.finish
        if self._stops.stopped:
            finish = FinishReason.stop_sequence
        elif finish is not None:
            released += self._stops.flush()
        special = event.special and not released
        token = Token(id=event.id, text=released, logprob=event.logprob, special=special)
        self.tokens.append(token)
        self.text += released
        self.finish = finish
        return StreamResponse(
            index=len(self.tokens),
            token=token,
            generated_text=self.prefix + self.text if finish is not None else None,
            details=self._details() if finish is not None else None,
        )

    def _details(self) -> StreamDetails:
        assert self.finish is not None
        return StreamDetails(
            finish_reason=self.finish,
            generated_tokens=len(self.tokens),
            seed=self.seed,
            input_length=self.input_length,
        )
