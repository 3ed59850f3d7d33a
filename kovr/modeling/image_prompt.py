"""Where an image sits in a prompt (TGI markdown ``![](data:...)``) and how its prefix is spliced in.

Training and serving both tokenize through :func:`tokenize_many_with_images` and splice through
:func:`splice_image_embeds`, so an image lands at the same token position in both.
"""

from __future__ import annotations

import re
from typing import Any

import torch

IMAGE_MARKDOWN = re.compile(r"!\[[^\]\n]*\]\(([^)\s]+)\)")


def split_prompt(text: str) -> list[str]:
    """Alternating [text, image_url, text, image_url, ..., text] (odd indices are image URLs)."""
    return IMAGE_MARKDOWN.split(text)


def tokenize_with_images(text: str, tokenizer: Any) -> tuple[list[int], list[str], list[int]]:
    """Token ids of the text around each image, the image URLs, and each image's token position.

    Text segments are tokenized separately (no special tokens), so an image never merges with
    the tokens beside it; training uses this same function, so positions match serving.
    """
    return tokenize_many_with_images([text], tokenizer)[0]


def tokenize_many_with_images(texts: list[str], tokenizer: Any) -> list[tuple[list[int], list[str], list[int]]]:
    """:func:`tokenize_with_images` of each text, tokenising each distinct text segment once."""
    splits = [split_prompt(text) for text in texts]
    ids_of = token_ids(tokenizer, [part for parts in splits for part in parts[::2] if part])
    out = []
    for parts in splits:
        ids: list[int] = []
        urls: list[str] = []
        positions: list[int] = []
        for index, part in enumerate(parts):
            if index % 2:
                urls.append(part)
                positions.append(len(ids))
            elif part:
                ids.extend(ids_of[part])
        out.append((ids, urls, positions))
    return out


def token_ids(tokenizer: Any, texts: list[str]) -> dict[str, list[int]]:
    """Each distinct text's token ids (no special tokens), in one tokenizer call: a training set
    repeats the prompt's header and most questions and answers, and a fast tokenizer encodes a
    batch in Rust, where a call per text spent minutes of a large set in Python."""
    distinct = list(dict.fromkeys(texts))
    encoded = tokenizer(distinct, add_special_tokens=False)["input_ids"] if distinct else []
    return dict(zip(distinct, encoded, strict=True))


def splice_image_embeds(
    text_embeds: torch.Tensor, image_embeds: list[torch.Tensor], positions: list[int]
) -> torch.Tensor:
    """Insert each image's prefix ``[n, H]`` before token index ``positions[i]`` of ``[T, H]``."""
    if len(image_embeds) != len(positions):
        raise ValueError(f"{len(image_embeds)} images but {len(positions)} positions")
    length = text_embeds.shape[0]
    pieces: list[torch.Tensor] = []
    start = 0
    for pos, embeds in sorted(zip(positions, image_embeds, strict=True), key=lambda pair: pair[0]):
        if not 0 <= pos <= length:
            raise ValueError(f"image position {pos} outside 0..{length}")
        if embeds.dim() != 2 or embeds.shape[1] != text_embeds.shape[1]:
            raise ValueError(f"image embeds {tuple(embeds.shape)} do not match hidden size {text_embeds.shape[1]}")
        pieces.extend([text_embeds[start:pos], embeds.to(text_embeds.dtype)])
        start = pos
    pieces.append(text_embeds[start:])
    return torch.cat(pieces, dim=0)
