"""Forwarding text-only requests to an upstream TGI (here: a second model_server, which speaks TGI)."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from text_generation import AsyncClient
from text_generation.errors import GenerationError, ValidationError

from finetune.vr.build import make_tiny_align_model
from kovr.modeling.images import encode_data_uri
from tests.model_server.conftest import PROMPT, model_server, model_settings
from tests.model_server.test_images import _image
from tests.servers import free_port


async def _upstream_requests(url: str) -> float:
    async with httpx.AsyncClient() as http:
        text = (await http.get(f"{url}/metrics")).text
    return sum(
        float(line.split()[-1]) for line in text.splitlines() if line.startswith("kovr_model_requests_total{")
    )


async def test_text_goes_upstream_and_images_stay_local(
    server_url: str, tiny_model_dir: Path, tmp_path: Path
) -> None:
    checkpoint = tmp_path / "vr"
    make_tiny_align_model(lm_hidden=64).save(checkpoint)
    settings = model_settings(tiny_model_dir, tmp_path, vr_checkpoint=str(checkpoint), tgi_upstream_url=server_url)
    with model_server(settings) as front:
        client = AsyncClient(front, timeout=60)
        before = await _upstream_requests(server_url)
        direct = await AsyncClient(server_url).generate(PROMPT, max_new_tokens=6)
        forwarded = await client.generate(PROMPT, max_new_tokens=6)
        streamed = [e async for e in client.generate_stream(PROMPT, max_new_tokens=6)]
        assert forwarded.generated_text == direct.generated_text == streamed[-1].generated_text
        with pytest.raises(ValidationError):  # the upstream's own error comes back unchanged
            await client.generate(PROMPT, max_new_tokens=4000)
        assert await _upstream_requests(server_url) == before + 4
        await client.generate(f"![]({encode_data_uri(_image(1))})\n{PROMPT}", max_new_tokens=3)
        assert await _upstream_requests(server_url) == before + 4  # the image turn ran locally
        async with httpx.AsyncClient() as http:
            info = (await http.get(f"{front}/info")).json()
        assert info["upstream"] == server_url and info["supports_images"] is True


async def test_upstream_only_server_proxies_info_and_refuses_images(server_url: str, tmp_path: Path) -> None:
    settings = model_settings(tmp_path / "unused", tmp_path, model=None, tgi_upstream_url=server_url)
    with model_server(settings) as front:
        async with httpx.AsyncClient(timeout=60) as http:
            info = (await http.get(f"{front}/info")).json()
            image = await http.post(f"{front}/generate", json={"inputs": f"![]({encode_data_uri(_image(1))}) 뭐야"})
            health = await http.get(f"{front}/health")
        assert info["upstream"] == server_url and info["supports_images"] is False
        assert image.status_code == 422 and "images are not supported" in image.json()["error"]
        assert health.status_code == 200
        assert (await AsyncClient(front).generate(PROMPT, max_new_tokens=3)).generated_text


async def test_unreachable_upstream_is_a_generation_error(tmp_path: Path) -> None:
    settings = model_settings(tmp_path, tmp_path, model=None, tgi_upstream_url=f"http://127.0.0.1:{free_port()}")
    with model_server(settings) as front, pytest.raises(GenerationError, match="upstream TGI unreachable"):
        await AsyncClient(front).generate(PROMPT)
