"""Where answers come from: ``NAME=SPEC`` on the command line, turned into a client.

SPEC is ``[KIND:]LOCATION[;model=NAME][;key_env=VAR]``:

- ``openai:http://host:8000/v1`` — any OpenAI-compatible server (KoVR's own app with an API token,
  vLLM, a hosted API). The key is read from the environment variable named by ``key_env``;
- ``tgi:http://host:8080`` — KoVR's model_server or a stock TGI: ``/generate`` with the model's own
  prompt template from ``/info`` (``prompt_template``; KULLM's when the server does not say);
- ``local:/path/to/model`` — a model folder, served in-process by model_server on a loopback port.

Without a KIND, a URL whose path ends in ``/v1`` is ``openai``, any other URL ``tgi``, anything
else a ``local`` folder. The environment is not read here: the CLI entry resolves ``key_env``
names once and hands the keys in.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import httpx

from evalchat.prompts import Item
from kovr.prompt import KULLM, PromptTemplate

Kind = Literal["openai", "tgi", "local"]
KINDS: tuple[Kind, ...] = ("openai", "tgi", "local")
HTTP_TIMEOUT_S = 300.0


class TargetError(ValueError):
    """A target spec is malformed, or a target cannot be reached; the message says which."""


@dataclass(frozen=True)
class TargetSpec:
    name: str
    kind: Kind
    location: str
    model: str | None = None
    key_env: str | None = None

    @property
    def identity(self) -> str:
        """What a cached answer belongs to (the name is only a label; the key is not part of it)."""
        return f"{self.kind}:{self.location}" + (f";model={self.model}" if self.model else "")


@dataclass(frozen=True)
class GenParams:
    max_new_tokens: int = 256
    temperature: float = 0.0  # 0: greedy, so a rerun of an uncached item gives the same answer

    def to_json(self) -> dict[str, Any]:
        return {"max_new_tokens": self.max_new_tokens, "temperature": self.temperature}


def _kind_of(location: str) -> Kind:
    if location.startswith(("http://", "https://")):
        return "openai" if httpx.URL(location).path.rstrip("/").endswith("/v1") else "tgi"
    return "local"


def parse_spec(name: str, spec: str) -> TargetSpec:
    """``[KIND:]LOCATION[;model=NAME][;key_env=VAR]`` (the name is given separately)."""
    location, *options = [part.strip() for part in spec.split(";")]
    kind: str | None = None
    head, sep, rest = location.partition(":")
    if sep and head in KINDS:
        kind, location = head, rest
    if not location:
        raise TargetError(f"{name}: empty location in {spec!r}")
    values: dict[str, str] = {}
    for option in options:
        key, sep, value = option.partition("=")
        if not sep or key not in ("model", "key_env") or not value:
            raise TargetError(f"{name}: unknown option {option!r} (use model=NAME or key_env=VAR)")
        values[key] = value
    chosen: Kind = kind if kind is not None else _kind_of(location)  # type: ignore[assignment]
    if chosen != "openai" and "key_env" in values:
        raise TargetError(f"{name}: key_env is only for openai targets")
    if chosen != "local":
        location = location.rstrip("/")
    return TargetSpec(name, chosen, location, values.get("model"), values.get("key_env"))


def parse_target(text: str) -> TargetSpec:
    """``NAME=SPEC`` from ``--target``."""
    name, sep, spec = text.partition("=")
    name = name.strip()
    if not sep or not name or not spec.strip():
        raise TargetError(f"--target {text!r}: expected NAME=SPEC")
    if not name.replace("-", "").replace("_", "").replace(".", "").isalnum():
        raise TargetError(f"--target {text!r}: NAME may use letters, digits, '-', '_' and '.'")
    return parse_spec(name, spec.strip())


def resolve_keys(specs: list[TargetSpec], environ: Mapping[str, str]) -> dict[str, str]:
    """Each openai target's key by target name, from the variable its spec names."""
    keys: dict[str, str] = {}
    for spec in specs:
        if spec.key_env is None:
            continue
        value = environ.get(spec.key_env)
        if not value:
            raise TargetError(f"{spec.name}: environment variable {spec.key_env} is not set")
        keys[spec.name] = value
    return keys


def user_message(item: Item) -> str:
    """The question as one chat message (KULLM's input, when present, follows the instruction)."""
    return f"{item.instruction}\n\n{item.input}" if item.input else item.instruction


class Target(Protocol):
    spec: TargetSpec

    def answer(self, item: Item, params: GenParams) -> str: ...

    def close(self) -> None: ...


@dataclass
class OpenAIChat:
    """A minimal OpenAI chat-completions client (also the judge's): one message in, its text out."""

    base_url: str
    model: str | None = None
    api_key: str | None = None
    timeout_s: float = HTTP_TIMEOUT_S
    client: httpx.Client = field(init=False)

    def __post_init__(self) -> None:
        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        self.client = httpx.Client(base_url=self.base_url, headers=headers, timeout=self.timeout_s)

    def model_name(self) -> str:
        if self.model is None:  # the server's first (often only) model, as `openai` users expect
            models = _json(self.client.get("/models"), self.base_url).get("data") or []
            if not models:
                raise TargetError(f"{self.base_url}: /models lists no model; name one with model=NAME")
            self.model = str(models[0]["id"])
        return self.model

    def chat(self, content: str, max_tokens: int, temperature: float) -> str:
        body = {"model": self.model_name(), "messages": [{"role": "user", "content": content}],
                "max_tokens": max_tokens, "temperature": temperature, "stream": False}
        data = _json(self.client.post("/chat/completions", json=body), self.base_url)
        try:
            return str(data["choices"][0]["message"]["content"] or "")
        except (KeyError, IndexError, TypeError):
            raise TargetError(f"{self.base_url}: not a chat completion: {json.dumps(data)[:200]}") from None

    def close(self) -> None:
        self.client.close()


def _json(response: httpx.Response, where: str) -> Any:
    if response.status_code >= 400:
        raise TargetError(f"{where}{response.request.url.path}: HTTP {response.status_code}: {response.text[:300]}")
    return response.json()


class OpenAITarget:
    def __init__(self, spec: TargetSpec, api_key: str | None) -> None:
        self.spec = spec
        self.chat = OpenAIChat(spec.location, spec.model, api_key)

    def answer(self, item: Item, params: GenParams) -> str:
        return self.chat.chat(user_message(item), params.max_new_tokens, params.temperature).strip()

    def close(self) -> None:
        self.chat.close()


class TGITarget:
    """TGI's /generate with the served model's prompt template (model_server reports it in /info)."""

    def __init__(self, spec: TargetSpec, url: str | None = None) -> None:
        self.spec = spec
        self.client = httpx.Client(base_url=url or spec.location, timeout=HTTP_TIMEOUT_S)
        info = _json(self.client.get("/info"), spec.location)
        raw = info.get("prompt_template") if isinstance(info, dict) else None
        self.template: PromptTemplate = PromptTemplate.from_json(raw) if isinstance(raw, dict) else KULLM

    def answer(self, item: Item, params: GenParams) -> str:
        parameters: dict[str, Any] = {"max_new_tokens": params.max_new_tokens, "stop": list(self.template.stop)}
        if params.temperature > 0:
            parameters.update(do_sample=True, temperature=params.temperature)
        body = {"inputs": self.template.render(item.instruction, item.input), "parameters": parameters}
        text = str(_json(self.client.post("/generate", json=body), self.spec.location)["generated_text"])
        for stop in self.template.stop:  # TGI keeps the stop sequence in the text
            text = text.split(stop)[0]
        return text.strip()

    def close(self) -> None:
        self.client.close()
