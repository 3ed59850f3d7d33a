"""Conversations: CRUD, newest-first cursor pagination, messages listing, and isolation between users."""

from __future__ import annotations

import unicodedata
from typing import Any

import httpx
from bson import ObjectId

from backend.db import conversations as conv_repo
from backend.db import messages as msg_repo
from tests.backend.conftest import LiveServer, MakeClient, signup_and_login


async def _create(client: httpx.AsyncClient, title: str) -> dict:
    resp = await client.post("/api/v1/conversations", json={"title": title})
    assert resp.status_code == 201, resp.text
    return resp.json()


async def test_crud(client: httpx.AsyncClient, live: LiveServer) -> None:
    await signup_and_login(client)
    default = await client.post("/api/v1/conversations", json={})
    assert default.status_code == 201 and default.json()["title"] == "새 대화"
    conv = await _create(client, unicodedata.normalize("NFD", "  오늘의 질문  "))
    assert conv["title"] == "오늘의 질문"  # NFC and trimmed
    assert set(conv) == {"id", "title", "created_at", "updated_at", "model", "message_count", "current_leaf_id"}

    got = await client.get(f"/api/v1/conversations/{conv['id']}")
    assert got.status_code == 200 and got.json()["title"] == "오늘의 질문"
    renamed = await client.patch(f"/api/v1/conversations/{conv['id']}", json={"title": "새 이름"})
    assert renamed.status_code == 200 and renamed.json()["title"] == "새 이름"
    assert renamed.json()["updated_at"] >= conv["updated_at"]

    oid, user_oid = (
        ObjectId(conv["id"]),
        (await live.db.conversations.find_one({"_id": ObjectId(conv["id"])}))["user_id"],
    )
    await msg_repo.create_message(
        db=live.db, conversation_id=oid, user_id=user_oid, role="user", content="안녕"
    )
    await live.db.images.insert_one({"conversation_id": oid, "user_id": user_oid, "sha256": "x"})
    assert (await client.delete(f"/api/v1/conversations/{conv['id']}")).status_code == 204
    assert (await client.get(f"/api/v1/conversations/{conv['id']}")).status_code == 404
    assert await live.db.messages.count_documents({"conversation_id": oid}) == 0
    assert await live.db.images.count_documents({"conversation_id": oid}) == 0
    assert (await client.delete(f"/api/v1/conversations/{conv['id']}")).status_code == 404


async def test_bad_conversation_inputs(client: httpx.AsyncClient) -> None:
    await signup_and_login(client)
    conv = await _create(client, "제목")
    for body in (
        {"title": ""},
        {"title": "   "},
        {"title": "가" * 201},
        {"title": 5},
        {"title": "a\nb"},
        {"title": "ok", "user_id": "x"},
    ):
        assert (await client.post("/api/v1/conversations", json=body)).status_code == 422, body
        assert (await client.patch(f"/api/v1/conversations/{conv['id']}", json=body)).status_code == 422, body
    assert (await client.patch(f"/api/v1/conversations/{conv['id']}", json={})).status_code == 422
    for bad_id in ("nope", "0" * 24, "%20"):
        resp = await client.get(f"/api/v1/conversations/{bad_id}")
        assert resp.status_code == 404
        assert resp.json()["error"] == {
            "code": "conversation_not_found",
            "message": "대화를 찾을 수 없습니다.",
        }
    for query in ("limit=0", "limit=101", "limit=abc", "cursor=@@@", "cursor=" + "a" * 300):
        resp = await client.get(f"/api/v1/conversations?{query}")
        assert resp.status_code == 422, query
        assert resp.json()["error"]["code"] in {"validation_error", "invalid_cursor"}


async def test_pagination_newest_first_without_gaps(client: httpx.AsyncClient, live: LiveServer) -> None:
    await signup_and_login(client)
    made = [await _create(client, f"대화 {i}") for i in range(7)]
    # An answer starting in the oldest one moves it to the top.
    answer_id = ObjectId()
    assert await conv_repo.claim(
        db=live.db,
        user_id=(await live.db.conversations.find_one({"_id": ObjectId(made[0]["id"])}))["user_id"],
        conversation_id=ObjectId(made[0]["id"]),
        message_id=answer_id,
        shown=conv_repo.Shown(leaf_id=answer_id, added_messages=1),
    )
    await conv_repo.release(db=live.db, conversation_id=ObjectId(made[0]["id"]), message_id=answer_id)
    expected = [made[0]["id"]] + [c["id"] for c in reversed(made[1:])]
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        params = {"limit": 3} | ({"cursor": cursor} if cursor else {})
        page = (await client.get("/api/v1/conversations", params=params)).json()
        seen += [c["id"] for c in page["items"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == expected
    assert pages == 3


async def test_messages_listing_oldest_first_with_cursor(client: httpx.AsyncClient, live: LiveServer) -> None:
    me = await signup_and_login(client)
    conv = await _create(client, "메시지")
    oid, uid = ObjectId(conv["id"]), ObjectId(me["id"])
    contents = [f"메시지 {i}" for i in range(5)]
    for i, text in enumerate(contents):
        doc = await msg_repo.create_message(
            db=live.db,
            conversation_id=oid,
            user_id=uid,
            role="user" if i % 2 == 0 else "assistant",
            content=text,
        )
        if i % 2:
            await msg_repo.set_fields(db=live.db, user_id=uid, message_id=doc["_id"], changes={"generated_tokens": 3})
    first = (await client.get(f"/api/v1/conversations/{conv['id']}/messages", params={"limit": 3})).json()
    rest = (
        await client.get(
            f"/api/v1/conversations/{conv['id']}/messages",
            params={"limit": 3, "cursor": first["next_cursor"]},
        )
    ).json()
    items = first["items"] + rest["items"]
    assert [m["content"] for m in items] == contents
    assert rest["next_cursor"] is None
    assert {"id", "conversation_id", "role", "content", "status", "image_ids", "created_at"} <= set(items[0])
    assert items[1]["generated_tokens"] == 3 and "user_id" not in items[1]


async def test_user_isolation(make_client: MakeClient, live: LiveServer) -> None:
    alice, bob = await make_client(), await make_client()
    a = await signup_and_login(alice)
    await signup_and_login(bob)
    conv = await _create(alice, "앨리스의 비밀")
    await msg_repo.create_message(
        db=live.db,
        conversation_id=ObjectId(conv["id"]),
        user_id=ObjectId(a["id"]),
        role="user",
        content="비밀",
    )
    url = f"/api/v1/conversations/{conv['id']}"
    for method, path, body in (
        ("GET", url, None),
        ("PATCH", url, {"title": "hacked"}),
        ("DELETE", url, None),
        ("GET", f"{url}/messages", None),
    ):
        resp = await bob.request(method, path, json=body)
        assert resp.status_code == 404, (method, path)
        assert resp.json()["error"]["code"] == "conversation_not_found"
    await _create(bob, "밥의 대화")
    bob_titles = [c["title"] for c in (await bob.get("/api/v1/conversations")).json()["items"]]
    assert bob_titles == ["밥의 대화"]
    alice_view = await alice.get(url)
    assert alice_view.status_code == 200 and alice_view.json()["title"] == "앨리스의 비밀"
    assert len((await alice.get(f"{url}/messages")).json()["items"]) == 1


async def test_unauthenticated_requests_are_401(client: httpx.AsyncClient) -> None:
    for method, path in (
        ("GET", "/api/v1/conversations"),
        ("POST", "/api/v1/conversations"),
        ("GET", "/api/v1/tokens"),
        ("GET", "/api/v1/users/me"),
    ):
        resp = await client.request(method, path, json={} if method == "POST" else None)
        assert resp.status_code == 401
        assert resp.json()["error"]["code"] == "not_authenticated"
        assert resp.headers["www-authenticate"] == "Bearer"


async def test_search_by_title_or_message(make_client: MakeClient, live: LiveServer) -> None:
    """`q` finds a conversation by its title or by what was said in it: literally, any case, NFC,
    newest first with the cursor, and only among the caller's own conversations."""
    alice, bob = await make_client(), await make_client()
    a = await signup_and_login(alice)
    await signup_and_login(bob)
    trip = await _create(alice, "제주도 여행 계획")
    recipe = await _create(alice, "저녁 메뉴")
    await _create(alice, "Python 질문 (a+b)*")
    await msg_repo.create_message(db=live.db, conversation_id=ObjectId(recipe["id"]), user_id=ObjectId(a["id"]),
                                  role="assistant", content="김치찌개에는 돼지고기와 두부를 넣으세요.")
    bob_conv = await _create(bob, "제주도 맛집")

    async def found(client: httpx.AsyncClient, q: str, **params: Any) -> list[str]:
        resp = await client.get("/api/v1/conversations", params={"q": q, **params})
        assert resp.status_code == 200, resp.text
        return [c["title"] for c in resp.json()["items"]]

    assert await found(alice, "제주도") == ["제주도 여행 계획"]  # not Bob's "제주도 맛집"
    assert await found(bob, "제주도") == [bob_conv["title"]]
    assert await found(alice, unicodedata.normalize("NFD", " 두부 ")) == ["저녁 메뉴"]  # message text
    assert await found(alice, "PYTHON") == ["Python 질문 (a+b)*"]
    assert await found(alice, "(a+b)*") == ["Python 질문 (a+b)*"]  # literal, not a pattern
    assert await found(alice, ".*") == []
    assert await found(alice, "   ") == ["Python 질문 (a+b)*", "저녁 메뉴", "제주도 여행 계획"]  # blank: all
    await _create(alice, "제주도 숙소")
    first = (await alice.get("/api/v1/conversations", params={"q": "제주도", "limit": 1})).json()
    assert [c["title"] for c in first["items"]] == ["제주도 숙소"] and first["next_cursor"]
    assert await found(alice, "제주도", cursor=first["next_cursor"], limit=1) == [trip["title"]]
    too_long = await alice.get("/api/v1/conversations", params={"q": "가" * 101})
    assert too_long.status_code == 422


async def test_korean_search_finds_words_with_particles_and_single_characters(
    make_client: MakeClient, live: LiveServer
) -> None:
    """The bigram index: "제주도" finds "제주도에서" (no space between noun and particle), one
    character finds what holds it, Latin text in any case; a bigram match alone is not a hit."""
    alice = await make_client()
    a = await signup_and_login(alice)
    uid = ObjectId(a["id"])
    trip, food, misc = [await _create(alice, t) for t in ("여름 휴가", "점심", "메모")]
    for conv, content in ((trip, "제주도에서 한라산에 올랐어요."), (food, "귤 한 상자를 샀어요."),
                          (misc, "Meeting with the DESIGN team; 주도권 얘기")):
        await msg_repo.create_message(db=live.db, conversation_id=ObjectId(conv["id"]), user_id=uid, role="user",
                                      content=content)

    async def found(q: str) -> list[str]:
        resp = await alice.get("/api/v1/conversations", params={"q": q})
        assert resp.status_code == 200, resp.text
        return [c["title"] for c in resp.json()["items"]]

    assert await found("제주도") == ["여름 휴가"]
    assert await found("한라산에 올") == ["여름 휴가"]
    assert await found("귤") == ["점심"]
    assert await found("design TEAM") == ["메모"]
    assert await found("주도") == ["메모", "여름 휴가"]  # both hold it, newest first
    assert await found("도에서 한") == ["여름 휴가"]
    assert await found("제주권") == []  # bigrams 제주 and 주권 are not both there
    assert await found("산도") == []  # every letter present, never together


async def test_export_as_markdown(make_client: MakeClient, live: LiveServer) -> None:
    """The whole conversation as a Markdown download named after its title; only for its owner."""
    alice, bob = await make_client(), await make_client()
    a = await signup_and_login(alice)
    await signup_and_login(bob)
    conv = await _create(alice, "제주도/여행: 계획?")
    oid, uid = ObjectId(conv["id"]), ObjectId(a["id"])
    await msg_repo.create_message(db=live.db, conversation_id=oid, user_id=uid, role="user",
                                  content="사흘 일정을 짜 주세요.", image_ids=[ObjectId()])
    await msg_repo.create_message(db=live.db, conversation_id=oid, user_id=uid, role="assistant",
                                  content="첫째 날에는 성산일출봉에", status="stopped")
    got = await alice.get(f"/api/v1/conversations/{conv['id']}/export")
    assert got.status_code == 200 and got.headers["content-type"] == "text/markdown; charset=utf-8"
    assert got.headers["content-disposition"] == (
        "attachment; filename=\"kovr-conversation.md\"; filename*=UTF-8''"
        "%EC%A0%9C%EC%A3%BC%EB%8F%84_%EC%97%AC%ED%96%89_%20%EA%B3%84%ED%9A%8D.md")  # 제주도_여행_ 계획.md
    text = got.text
    assert text.startswith("# 제주도/여행: 계획?\n")
    assert text.index("## 사용자 · ") < text.index("[이미지 1장]") < text.index("사흘 일정을 짜 주세요.")
    assert text.index("사흘 일정") < text.index("## KoVR · ") < text.index("첫째 날에는 성산일출봉에")
    assert "_(생성을 중지했습니다)_" in text
    english = await alice.get(f"/api/v1/conversations/{conv['id']}/export", headers={"Accept-Language": "en"})
    assert "## User · " in english.text and "_(stopped)_" in english.text
    denied = await bob.get(f"/api/v1/conversations/{conv['id']}/export")
    assert denied.status_code == 404 and denied.json()["error"]["code"] == "conversation_not_found"
