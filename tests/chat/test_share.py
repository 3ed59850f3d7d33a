"""Share links: a public, read-only snapshot of a conversation, revocable, owner-only to make,
its images reachable only through the share and only those it lists."""

from __future__ import annotations

import datetime as dt
import re
import uuid
from typing import Any

import httpx
from bson import ObjectId
from pymongo import MongoClient

from kovr.settings import Settings
from tests.chat.support import Account, sign_up, stream_message
from tests.chat.test_images import image_bytes, upload

QUESTION = "세종대왕은 무엇을 만들었나요?"


def _share(account: Account, conversation_id: str) -> dict[str, str]:
    response = account.client.post(f"/api/v1/conversations/{conversation_id}/shares")
    assert response.status_code == 201, response.text
    return dict(response.json())


def _anonymous(app_url: str) -> httpx.Client:
    return httpx.Client(base_url=app_url, timeout=30)


def _page(app_url: str, share: dict[str, str]) -> httpx.Response:
    with _anonymous(app_url) as client:
        return client.get(f"/s/{share['id']}")


def test_shared_page_renders_without_an_account_and_hides_the_owner(app_url: str) -> None:
    name = f"주인{uuid.uuid4().hex[:6]}"
    owner = sign_up(app_url, name=name)
    conversation = owner.conversation("세종 이야기")
    stream_message(owner, conversation, QUESTION)
    share = _share(owner, conversation)
    assert len(share["id"]) >= 22 and share["url"].endswith(f"/s/{share['id']}")
    listed = owner.client.get("/api/v1/shares").json()["items"]
    assert [s["id"] for s in listed] == [share["id"]] and listed[0]["title"] == "세종 이야기"

    page = _page(app_url, share)
    assert page.status_code == 200
    assert "noindex" in page.headers["x-robots-tag"]
    assert '<meta name="robots" content="noindex' in page.text
    assert QUESTION in page.text and "훈민정음" in page.text and "세종 이야기" in page.text
    # Nothing of the owner, and nothing to act on: no form, no script, no CSRF token.
    assert owner.email not in page.text and name not in page.text
    assert "<form" not in page.text and "<script" not in page.text and "csrf" not in page.text.lower()
    assert "hx-post" not in page.text


def test_markdown_is_rendered_and_sanitised_like_the_chat(app_url: str, app_settings: Settings, mongo_uri: str) -> None:
    owner = sign_up(app_url)
    conversation = owner.conversation()
    now = dt.datetime.now(dt.UTC)
    seeded = [("user", "표로 보여 주세요"), ("assistant", "**굵게** 그리고 <script>alert(1)</script>\n\n- 하나")]
    with MongoClient[dict[str, Any]](mongo_uri) as client:
        client[app_settings.mongodb_db].messages.insert_many([
            {"conversation_id": ObjectId(conversation), "user_id": ObjectId(owner.user_id), "role": role,
             "content": text, "status": "complete", "image_ids": [], "created_at": now + dt.timedelta(seconds=i),
             "updated_at": now} for i, (role, text) in enumerate(seeded)])
    page = _page(app_url, _share(owner, conversation))
    assert "<strong>굵게</strong>" in page.text and "<li>하나</li>" in page.text
    assert "<script>alert" not in page.text and "&lt;script&gt;" in page.text


def test_images_only_through_the_share_and_only_listed_ones(app_url: str) -> None:
    owner = sign_up(app_url)
    shown = upload(owner, image_bytes("PNG", color="blue")).json()["id"]
    other = upload(owner, image_bytes("PNG", color="green")).json()["id"]
    conversation = owner.conversation()
    stream_message(owner, conversation, "이 그림을 설명해 주세요.", image_ids=[shown])  # tiny model: no vision
    share = _share(owner, conversation)
    page = _page(app_url, share)
    assert f"/s/{share['id']}/images/{shown}" in page.text and "/api/v1/images/" not in page.text
    with _anonymous(app_url) as client:
        image = client.get(f"/s/{share['id']}/images/{shown}")
        assert image.status_code == 200 and image.content == image_bytes("PNG", color="blue")
        assert image.headers["content-type"] == "image/png" and "noindex" in image.headers["x-robots-tag"]
        assert client.get(f"/s/{share['id']}/images/{other}").status_code == 404  # the owner's, not shared
        assert client.get(f"/s/not-a-share-{uuid.uuid4().hex}/images/{shown}").status_code == 404
        assert client.get(f"/api/v1/images/{shown}").status_code == 401  # the normal route stays owner-only


def test_revoked_link_is_gone(app_url: str) -> None:
    owner = sign_up(app_url)
    image_id = upload(owner, image_bytes("PNG")).json()["id"]
    conversation = owner.conversation()
    stream_message(owner, conversation, "그림", image_ids=[image_id])
    share = _share(owner, conversation)
    assert owner.client.delete(f"/api/v1/shares/{share['id']}").status_code == 204
    page = _page(app_url, share)
    assert page.status_code == 404 and "noindex" in page.headers["x-robots-tag"]
    with _anonymous(app_url) as client:
        assert client.get(f"/s/{share['id']}/images/{image_id}").status_code == 404
    assert owner.client.delete(f"/api/v1/shares/{share['id']}").status_code == 404
    assert owner.client.get("/api/v1/shares").json()["items"] == []


def test_only_the_owner_shares_and_revokes(app_url: str) -> None:
    owner, stranger = sign_up(app_url), sign_up(app_url)
    conversation = owner.conversation()
    stream_message(owner, conversation, QUESTION)
    refused = stranger.client.post(f"/api/v1/conversations/{conversation}/shares")
    assert refused.status_code == 404 and refused.json()["error"]["code"] == "conversation_not_found"
    share = _share(owner, conversation)
    revoke = stranger.client.delete(f"/api/v1/shares/{share['id']}")
    assert revoke.status_code == 404 and revoke.json()["error"]["code"] == "share_not_found"
    assert stranger.client.get("/api/v1/shares").json()["items"] == []
    assert _page(app_url, share).status_code == 200
    with _anonymous(app_url) as client:
        assert client.post(f"/api/v1/conversations/{conversation}/shares").status_code == 401


def test_snapshot_does_not_change_after_new_messages(app_url: str) -> None:
    owner = sign_up(app_url)
    conversation = owner.conversation()
    stream_message(owner, conversation, QUESTION)
    first = _share(owner, conversation)
    stream_message(owner, conversation, "안녕하세요? 자기소개를 해 주세요.")
    assert owner.client.patch(f"/api/v1/conversations/{conversation}", json={"title": "바뀐 제목"}).status_code == 200
    before = _page(app_url, first).text
    assert QUESTION in before and "자기소개" not in before and "바뀐 제목" not in before
    later = _page(app_url, _share(owner, conversation)).text
    assert "자기소개" in later and "바뀐 제목" in later
    assert len(re.findall(r'class="msg user"', later)) == 2


def test_deleting_the_conversation_removes_its_links(app_url: str) -> None:
    owner = sign_up(app_url)
    conversation = owner.conversation()
    stream_message(owner, conversation, QUESTION)
    share = _share(owner, conversation)
    assert owner.client.delete(f"/api/v1/conversations/{conversation}").status_code == 204
    assert _page(app_url, share).status_code == 404
