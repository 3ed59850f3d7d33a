"""Images as TGI markdown data URIs, encoded by a tiny random CLIP align model and spliced in."""

from __future__ import annotations

import asyncio
import base64
import io
import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import torch
from PIL import Image
from text_generation import AsyncClient
from text_generation.errors import ValidationError

from finetune.vr.build import make_tiny_align_model
from kovr.modeling.images import encode_data_uri
from tests.model_server.conftest import PROMPT, model_server, model_settings


def _image(seed: int, size: int = 40, fmt: str = "PNG") -> Image.Image:
    torch.manual_seed(seed)
    pixels = (torch.rand(size, size, 3) * 255).to(torch.uint8).numpy()
    return Image.fromarray(pixels)


def _uri(image: Image.Image, fmt: str = "PNG") -> str:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return f"data:image/{fmt.lower()};base64," + base64.b64encode(buffer.getvalue()).decode()


@pytest.fixture(scope="module")
def vr_url(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    checkpoint = tmp_path_factory.mktemp("vr")
    make_tiny_align_model(lm_hidden=64, language_model=str(tiny_model_dir)).save(checkpoint)
    settings = model_settings(
        tiny_model_dir, tmp_path_factory.mktemp("d"), vr_checkpoint=str(checkpoint), max_image_pixels=200 * 200
    )
    with model_server(settings) as url:
        yield url


async def _answer(url: str, inputs: str) -> tuple[str, list[float]]:
    r = await AsyncClient(url, timeout=60).generate(inputs, max_new_tokens=12)
    return r.generated_text, [t.logprob for t in r.details.tokens]


async def test_info_says_images_are_supported(vr_url: str) -> None:
    async with httpx.AsyncClient() as http:
        info = (await http.get(f"{vr_url}/info")).json()
    assert info["supports_images"] is True and info["image_prefix_tokens"] == 16


async def test_image_changes_the_answer_and_different_images_differ(vr_url: str) -> None:
    plain = await _answer(vr_url, PROMPT)
    red = await _answer(vr_url, f"![]({encode_data_uri(_image(1))})\n{PROMPT}")
    blue = await _answer(vr_url, f"![]({encode_data_uri(_image(2))})\n{PROMPT}")
    assert red != plain
    assert red != blue


async def test_image_prefix_counts_in_input_length(vr_url: str) -> None:
    inputs = f"![]({encode_data_uri(_image(1))})\n{PROMPT}"
    async with httpx.AsyncClient(timeout=60) as http:
        text_only = len((await http.post(f"{vr_url}/tokenize", json={"inputs": "\n" + PROMPT})).json())
        body = {"inputs": inputs, "parameters": {"max_new_tokens": 2, "details": True}}
        async with http.stream("POST", f"{vr_url}/generate_stream", json=body) as response:
            last = [line async for line in response.aiter_lines() if line.startswith("data:")][-1]
    # tiny CLIP: 32x32 image, 8x8 patches -> 16 prefix positions
    assert json.loads(last.removeprefix("data:"))["details"]["input_length"] == text_only + 16


async def test_batched_with_others_equals_alone(vr_url: str) -> None:
    inputs = f"사진: ![]({encode_data_uri(_image(3))})\n{PROMPT}"
    alone = await _answer(vr_url, inputs)
    others = [PROMPT, f"![]({encode_data_uri(_image(4))})\n{PROMPT}", "hello world"]
    together = await asyncio.gather(_answer(vr_url, inputs), *(_answer(vr_url, o) for o in others))
    assert together[0][0] == alone[0]
    assert together[0][1] == pytest.approx(alone[1], abs=1e-4)


@pytest.mark.parametrize(
    ("image_markdown", "message"),
    [
        ("![](https://example.com/cat.png)", "URLs are never fetched"),
        ("![](data:image/png;base64,!!!!)", "base64 data URI"),
        ("![](data:image/png;base64,aGVsbG8=)", "cannot decode image"),
        (f"![]({_uri(_image(5), 'GIF')})", "unsupported image format GIF"),
        (f"![]({_uri(_image(6, size=300))})", "pixels"),
    ],
)
async def test_bad_images_are_422(vr_url: str, image_markdown: str, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        await AsyncClient(vr_url).generate(f"{image_markdown}\n{PROMPT}")


async def test_server_without_align_model_refuses_images(server_url: str) -> None:
    async with httpx.AsyncClient() as http:
        r = await http.post(f"{server_url}/generate", json={"inputs": f"![]({encode_data_uri(_image(1))}) 설명해 줘"})
    assert r.status_code == 422
    assert r.json()["error_type"] == "validation" and "images are not supported" in r.json()["error"]
