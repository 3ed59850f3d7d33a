"""From a validated request to the engine's inputs: token ids, truncation, image prefix embeddings.

Runs in a worker thread (tokenising and encoding images is CPU work). Every problem with the
request raises :class:`WireValidationError` (422) with a clear message.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from PIL import Image

from kovr.modeling.align_model import AlignModel
from kovr.modeling.image_prompt import splice_image_embeds, split_prompt, tokenize_with_images
from kovr.modeling.images import decode_data_uri
from kovr.settings import Settings
from model_server.loading import LoadedModel
from model_server.sampling import SamplingParams
from model_server.wire import GenerateParameters, WireValidationError, check_input_length, check_limits

IMAGE_FORMATS = ("PNG", "JPEG", "WEBP")
NO_IMAGES = ("images are not supported: 이 모델 서버는 이미지를 지원하지 않습니다 "
             "(no vision-align checkpoint configured)")


@dataclass
class Prepared:
    prompt_ids: list[int]
    prompt_embeds: torch.Tensor | None
    input_length: int
    max_new_tokens: int
    sampling: SamplingParams


def has_images(inputs: str) -> bool:
    return len(split_prompt(inputs)) > 1


def prepare(
    inputs: str,
    params: GenerateParameters,
    *,
    loaded: LoadedModel,
    align: AlignModel | None,
    settings: Settings,
) -> Prepared:
    check_limits(
        params,
        max_input_tokens=settings.max_input_tokens,
        max_total_tokens=settings.max_total_tokens,
        max_new_tokens_limit=settings.max_new_tokens_limit,
    )
    if has_images(inputs):
        if align is None:
            raise WireValidationError(NO_IMAGES)
        ids, embeds, length = _with_images(inputs, params, loaded=loaded, align=align, settings=settings)
    else:
        ids = list(loaded.tokenizer(inputs)["input_ids"])
        if params.truncate is not None:
            ids = ids[-params.truncate :]  # TGI keeps the end of the prompt
        embeds, length = None, len(ids)
    if length == 0:
        raise WireValidationError("`inputs` cannot be empty")
    max_new = params.max_new_tokens
    if max_new is None:
        max_new = max(1, min(settings.max_total_tokens - length, settings.max_new_tokens_limit))
    check_input_length(
        length, max_new, max_input_tokens=settings.max_input_tokens, max_total_tokens=settings.max_total_tokens
    )
    return Prepared(ids, embeds, length, max_new, SamplingParams.from_wire(params))


def _with_images(
    inputs: str, params: GenerateParameters, *, loaded: LoadedModel, align: AlignModel, settings: Settings
) -> tuple[list[int], torch.Tensor, int]:
    ids, urls, positions = tokenize_with_images(inputs, loaded.tokenizer)
    images = [_decode(url, settings) for url in urls]
    length = len(ids) + len(images) * align.num_prefix_tokens
    if params.truncate is not None and length > params.truncate:
        raise WireValidationError(
            f"`truncate` cannot cut a prompt with images: it has {length} positions, truncate is {params.truncate}"
        )
    with torch.inference_mode():
        prefixes = align.encode(align.preprocess(images))
        table = loaded.model.get_input_embeddings()
        text = table(torch.tensor(ids, dtype=torch.long, device=loaded.device))
        spliced = splice_image_embeds(text, [p.to(text.dtype) for p in prefixes], positions)
    return ids, spliced, length


def _decode(url: str, settings: Settings) -> Image.Image:
    if not url.startswith("data:"):
        raise WireValidationError(
            "이미지는 data: URI로만 보낼 수 있습니다; URL은 가져오지 않습니다 "
            "(images must be data:image/...;base64 URIs; URLs are never fetched)"
        )
    try:
        image = decode_data_uri(url, max_bytes=settings.max_image_bytes, max_pixels=settings.max_image_pixels)
    except ValueError as exc:
        raise WireValidationError(str(exc)) from None
    if image.format not in IMAGE_FORMATS:
        raise WireValidationError(
            f"지원하지 않는 이미지 형식입니다 (unsupported image format {image.format}; PNG, JPEG or WebP only)"
        )
    return image
