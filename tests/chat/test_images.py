"""Image upload: content sniffed (not the name), size and pixel limits, owner-only access, and
images travelling with a message."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

from tests.chat.support import (
    backend,
    backend_settings,
    model_settings,
    serve_in_thread,
    sign_up,
    stream_message,
)


def image_bytes(fmt: str, size: tuple[int, int] = (32, 24), color: str = "red") -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, color).save(out, format=fmt)
    return out.getvalue()


def upload(account, data: bytes, name: str = "photo.png", content_type: str = "image/png"):
    return account.client.post("/api/v1/images", files={"file": (name, data, content_type)})


def test_png_jpeg_webp_are_accepted_and_served_to_their_owner_only(app_url: str) -> None:
    owner, stranger = sign_up(app_url), sign_up(app_url)
    for fmt, mime in (("PNG", "image/png"), ("JPEG", "image/jpeg"), ("WEBP", "image/webp")):
        data = image_bytes(fmt)
        # The client's name and type are lies on purpose: the bytes decide.
        response = upload(owner, data, name="x.txt", content_type="application/octet-stream")
        assert response.status_code == 201, response.text
        body = response.json()
        assert body["content_type"] == mime and (body["width"], body["height"]) == (32, 24)
        served = owner.client.get(f"/api/v1/images/{body['id']}")
        assert served.status_code == 200 and served.headers["content-type"] == mime and served.content == data
        assert stranger.client.get(f"/api/v1/images/{body['id']}").status_code == 404
    assert owner.client.get("/api/v1/images/not-an-id").status_code == 404


def test_uploads_are_checked(app_url: str) -> None:
    account = sign_up(app_url)
    not_image = upload(account, b"<html><script>alert(1)</script></html>", name="evil.png")
    assert not_image.status_code == 415 and not_image.json()["error"]["code"] == "image_unsupported"
    gif = io.BytesIO()
    Image.new("RGB", (8, 8)).save(gif, format="GIF")
    assert upload(account, gif.getvalue(), name="a.gif", content_type="image/gif").status_code == 415
    truncated = image_bytes("PNG", (300, 300), "blue")[:200]
    broken = upload(account, truncated)
    assert broken.status_code in (415, 422)
    huge_pixels = image_bytes("PNG", (5000, 4000), "white")  # 20 MP, small file: a decompression bomb
    assert len(huge_pixels) < 1_000_000
    bomb = upload(account, huge_pixels)
    assert bomb.status_code == 413 and bomb.json()["error"]["code"] == "image_too_many_pixels"
    too_big = upload(account, image_bytes("PNG") + b"\0" * (10 * 1024 * 1024))
    assert too_big.status_code == 413
    empty = upload(account, b"")
    assert empty.status_code == 422
    unauthenticated = account.client.post("/api/v1/images", files={"file": ("a.png", image_bytes("PNG"))},
                                          headers={"Authorization": ""})
    assert unauthenticated.status_code == 401


def test_message_with_image_keeps_it_and_refuses_others_images(app_url: str) -> None:
    owner, stranger = sign_up(app_url), sign_up(app_url)
    image_id = upload(owner, image_bytes("PNG")).json()["id"]
    conversation = stranger.conversation()
    refused = stranger.client.post(f"/api/v1/conversations/{conversation}/messages",
                                   json={"content": "이 그림은?", "image_ids": [image_id]})
    assert refused.status_code == 404 and refused.json()["error"]["code"] == "image_not_found"
    assert stranger.messages(conversation) == []

    mine = owner.conversation()
    events = stream_message(owner, mine, "이 그림을 설명해 주세요.", image_ids=[image_id])
    # The tiny test model has no vision part: the model server says so, in Korean, and the
    # question with its image is kept.
    assert events[-1].event == "error" and events[-1].data["code"] == "images_not_supported"
    question = owner.messages(mine)[0]
    assert question["image_ids"] == [image_id] and question["content"] == "이 그림을 설명해 주세요."
    # Deleting the conversation deletes its images.
    assert owner.client.delete(f"/api/v1/conversations/{mine}").status_code in (200, 204)
    assert owner.client.get(f"/api/v1/images/{image_id}").status_code == 404


@pytest.fixture(scope="module")
def vision_app_url(tiny_chat_model: Path, mongo_uri: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """model_server with a tiny random vision-align checkpoint on the tiny model, and a backend on it."""
    from finetune.vr.build import make_tiny_align_model
    from model_server.app import create_model_app

    folder = tmp_path_factory.mktemp("vision")
    make_tiny_align_model(64, language_model=str(tiny_chat_model)).save(folder / "align")
    settings = model_settings(tiny_chat_model, folder, vr_checkpoint=str(folder / "align"))
    with serve_in_thread(create_model_app(settings)) as model_url, \
            backend(backend_settings(mongo_uri, model_url, folder / "app")) as url:
        yield url


@pytest.mark.slow
def test_image_reaches_a_vision_model_and_the_answer_streams(vision_app_url: str) -> None:
    account = sign_up(vision_app_url)
    image_id = upload(account, image_bytes("JPEG", (640, 480), "navy")).json()["id"]
    conversation = account.conversation()
    events = stream_message(account, conversation, "이 그림을 설명해 주세요.", image_ids=[image_id],
                            parameters={"max_new_tokens": 20})
    assert events[-1].event == "done", events[-1]
    question, answer = account.messages(conversation)
    assert question["image_ids"] == [image_id]
    assert answer["status"] == "complete" and answer["content"] == "".join(
        e.data["text"] for e in events if e.event == "token")
    # The prompt was counted with the image prefix, not with its base64 text (tens of thousands of chars).
    assert 0 < answer["prompt_tokens"] < 600
