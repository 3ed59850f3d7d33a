"""Prompt templates shared by fine-tuning, the model server and the chat backend (pure Python).

The template a model was trained with is saved beside it as ``prompt_template.json`` and is what
model_server and the chat backend use to talk to that model. The default is KULLM's Korean
Alpaca template. Chat history is rendered as repeated instruction/response blocks so that a
single-turn instruction model sees the shape it was trained on.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

TEMPLATE_FILE = "prompt_template.json"


@dataclass(frozen=True)
class Turn:
    """One exchange; ``assistant`` is None for the turn the model is asked to answer."""

    user: str
    assistant: str | None = None
    input: str = ""


@dataclass(frozen=True)
class PromptTemplate:
    name: str
    prompt_input: str
    prompt_no_input: str
    response_split: str
    # Text that starts the next block: generation stops there and it never reaches the user.
    stop: tuple[str, ...] = field(default_factory=tuple)
    # Header of the no-input prompt; repeated turns reuse only the part after it.
    header_no_input: str = ""

    def render(self, instruction: str, input: str = "") -> str:
        """A single-turn prompt, exactly as used in training."""
        if input:
            return self.prompt_input.format(instruction=instruction, input=input)
        return self.prompt_no_input.format(instruction=instruction)

    def render_chat(self, turns: list[Turn]) -> str:
        """A multi-turn prompt: earlier turns as completed blocks, the last one left open."""
        if not turns or turns[-1].assistant is not None:
            raise ValueError("the last turn must be the one to answer (assistant=None)")
        *history, last = turns
        if not history:
            return self.render(last.user, last.input)
        first = self.render(history[0].user, history[0].input) + (history[0].assistant or "")
        blocks = [first]
        for turn in [*history[1:], last]:
            body = self._block(turn)
            blocks.append(body + (turn.assistant or ""))
        return "\n\n".join(blocks)

    def _block(self, turn: Turn) -> str:
        # The template without its header: "### 명령어:\n...\n\n### 응답:\n"
        full = self.render(turn.user, turn.input)
        header = self.header_no_input
        return full[len(header):] if header and full.startswith(header) else full

    def response_of(self, text: str) -> str:
        """The model's answer in a full decoded text (everything after the last response marker)."""
        return text.split(self.response_split)[-1].strip()

    def to_json(self) -> dict[str, object]:
        data = asdict(self)
        data["stop"] = list(self.stop)
        return data

    def save(self, folder: Path) -> Path:
        path = Path(folder) / TEMPLATE_FILE
        path.write_text(json.dumps(self.to_json(), ensure_ascii=False, indent=2), encoding="utf-8")
        return path

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> PromptTemplate:
        known = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        known["stop"] = tuple(known.get("stop", ()))
        return cls(**known)


_KULLM_HEADER_INPUT = (
    "아래는 작업을 설명하는 명령어와 추가 입력을 제공하는 컨텍스트가 짝을 이루는 예제입니다. "
    "요청을 적절히 완료하는 응답을 작성하세요.\n\n"
)
_KULLM_HEADER = "아래는 작업을 설명하는 명령어입니다. 요청을 적절히 완료하는 응답을 작성하세요.\n\n"

KULLM = PromptTemplate(
    name="kullm",
    prompt_input=_KULLM_HEADER_INPUT + "### 명령어:\n{instruction}\n\n### 입력:\n{input}\n\n### 응답:\n",
    prompt_no_input=_KULLM_HEADER + "### 명령어:\n{instruction}\n\n### 응답:\n",
    response_split="### 응답:",
    stop=("\n\n### 명령어:", "\n### 명령어:", "### 명령어:"),
    header_no_input=_KULLM_HEADER,
)

TEMPLATES: dict[str, PromptTemplate] = {KULLM.name: KULLM}


def get_template(name: str) -> PromptTemplate:
    try:
        return TEMPLATES[name]
    except KeyError:
        raise ValueError(f"unknown prompt template {name!r}; known: {', '.join(TEMPLATES)}") from None


def load_template(folder: str | Path | None) -> PromptTemplate:
    """The template saved beside a model, or the KULLM default when the folder has none."""
    if folder is not None:
        path = Path(folder) / TEMPLATE_FILE
        if path.is_file():
            return PromptTemplate.from_json(json.loads(path.read_text(encoding="utf-8")))
    return KULLM
