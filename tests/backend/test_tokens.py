"""Personal API tokens: created and shown once, usable as Bearer, listed by prefix, revoked at once."""

from __future__ import annotations

import base64

import httpx

from tests.backend.conftest import LiveServer, MakeClient, signup_and_login


async def test_create_use_list_revoke(make_client: MakeClient, live: LiveServer) -> None:
    owner = await make_client()
    await signup_and_login(owner)
    created = await owner.post("/api/v1/tokens", json={"name": "내 스크립트"})
    assert created.status_code == 201
    body = created.json()
    token = body["token"]
    assert token.startswith("kovr_")
    raw = token.removeprefix("kovr_")
    assert len(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4))) >= 32
    assert token.startswith(body["prefix"]) and len(body["prefix"]) < len(token) // 2
    assert body["last_used_at"] is None

    stored = await live.db.api_tokens.find_one({"prefix": body["prefix"]})
    assert stored is not None and token not in str(stored)  # only the hash is kept

    program = await make_client()
    program.headers["Authorization"] = f"Bearer {token}"
    me = await program.get("/api/v1/users/me")
    assert me.status_code == 200
    made = await program.post("/api/v1/conversations", json={"title": "API로 만든 대화"})
    assert made.status_code == 201  # Bearer requests need no CSRF token

    listing = (await owner.get("/api/v1/tokens")).json()
    assert [t["id"] for t in listing] == [body["id"]]
    assert "token" not in listing[0]
    assert listing[0]["last_used_at"] is not None

    assert (await owner.delete(f"/api/v1/tokens/{body['id']}")).status_code == 204
    assert (await program.get("/api/v1/users/me")).status_code == 401
    assert (await owner.get("/api/v1/tokens")).json() == []
    assert (await owner.delete(f"/api/v1/tokens/{body['id']}")).status_code == 404


async def test_bad_token_inputs(client: httpx.AsyncClient) -> None:
    await signup_and_login(client)
    for body in ({}, {"name": ""}, {"name": "  "}, {"name": "x" * 101}, {"name": "a", "scope": "all"}):
        assert (await client.post("/api/v1/tokens", json=body)).status_code == 422, body
    for bad_id in ("nope", "0" * 24, "zz" * 12):
        resp = await client.delete(f"/api/v1/tokens/{bad_id}")
        assert resp.status_code == 404
        assert resp.json()["error"]["code"] == "token_not_found"


async def test_other_users_tokens_are_invisible(make_client: MakeClient) -> None:
    alice, bob = await make_client(), await make_client()
    await signup_and_login(alice)
    await signup_and_login(bob)
    token_id = (await alice.post("/api/v1/tokens", json={"name": "alice"})).json()["id"]
    assert (await bob.get("/api/v1/tokens")).json() == []
    assert (await bob.delete(f"/api/v1/tokens/{token_id}")).status_code == 404
    assert [t["id"] for t in (await alice.get("/api/v1/tokens")).json()] == [token_id]
