"""Readers for the deployment files, used by tests/test_docker.py (no Docker engine needed).

Just enough of the Dockerfile, pip and Compose syntax for static checks: instructions with their
continuation lines joined, ARG defaults, build stages, `pip install` targets, env files and
Compose's ${VAR} interpolation.
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Instruction:
    line: int
    keyword: str
    args: str


def parse_dockerfile(path: Path) -> list[Instruction]:
    """Instructions with continuation lines joined; comment lines inside a continuation dropped."""
    result: list[Instruction] = []
    pending: list[str] = []
    start = 0
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        stripped = raw.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if pending and stripped.startswith("#"):
            continue
        if not pending:
            start = number
        pending.append(stripped.removesuffix("\\"))
        if not stripped.endswith("\\"):
            keyword, _, args = " ".join(pending).partition(" ")
            result.append(Instruction(start, keyword.upper(), args.strip()))
            pending = []
    assert not pending, f"{path.name}: dangling line continuation"
    return result


def arg_defaults(instructions: list[Instruction]) -> dict[str, str]:
    defaults: dict[str, str] = {}
    for ins in instructions:
        if ins.keyword == "ARG" and "=" in ins.args:
            name, _, value = ins.args.partition("=")
            defaults[name.strip()] = value.strip().strip('"')
    return defaults


def substitute(text: str, values: dict[str, str]) -> str:
    return re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: values.get(m[1] or m[2], m[0]), text)


def stages(instructions: list[Instruction]) -> list[list[Instruction]]:
    """The instructions of each build stage (FROM starts one)."""
    result: list[list[Instruction]] = []
    for ins in instructions:
        if ins.keyword == "FROM":
            result.append([])
        if result:
            result[-1].append(ins)
    return result


def exec_form(args: str) -> list[str]:
    value = json.loads(args)
    assert isinstance(value, list), args
    return value


_PIP_OPTIONS_WITH_VALUE = {
    "-i", "--index-url", "--extra-index-url", "-r", "--requirement", "-c", "--constraint",
    "-t", "--target", "-f", "--find-links", "--prefix", "--root", "--python",
}


def pip_install_targets(run: str) -> list[str]:
    """Requirement arguments of every `pip install` in a RUN line (editable paths included)."""
    targets: list[str] = []
    for segment in re.split(r"&&|\|\||;", run):
        words = shlex.split(segment)
        for i in range(len(words) - 1):
            if words[i] == "pip" and words[i + 1] == "install":
                targets += _requirement_words(words[i + 2:])
    return targets


def _requirement_words(words: list[str]) -> list[str]:
    found: list[str] = []
    skip = False
    for word in words:
        if skip:
            skip = False
        elif word in ("-e", "--editable"):
            continue
        elif word in _PIP_OPTIONS_WITH_VALUE:
            assert word not in ("-r", "--requirement"), "install from pyproject.toml, not a requirements file"
            skip = True
        elif not word.startswith("-"):
            found.append(word)
    return found


_INTERPOLATION = re.compile(r"\$\{(\w+)(?:(:?[-?])([^}]*))?\}")


def env_entries(path: Path) -> list[tuple[str, str, bool]]:
    """(name, value, active) for each `NAME=value` line; active is False for `# NAME=value`."""
    entries = []
    for line in path.read_text(encoding="utf-8").splitlines():
        match = re.match(r"^(# )?([A-Z][A-Z0-9_]*)=(.*)$", line)
        if match:
            entries.append((match[2], match[3], match[1] is None))
    return entries


def interpolate(value: Any, env: dict[str, str]) -> Any:
    """Compose's ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?error}, ${VAR?error}."""
    if isinstance(value, dict):
        return {k: interpolate(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, env) for v in value]
    if not isinstance(value, str):
        return value

    def one(match: re.Match[str]) -> str:
        name, op, arg = match[1], match[2] or "", match[3] or ""
        present = name in env and (env[name] != "" or not op.startswith(":"))
        if present:
            return env[name]
        if op.endswith("?"):
            raise KeyError(f"{name}: {arg}")
        return arg if op.endswith("-") else ""

    return _INTERPOLATION.sub(one, value)
