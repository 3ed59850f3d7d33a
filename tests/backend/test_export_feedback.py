"""Feedback → training data: consent (off by default, set through the API), the export's SFT
records and sibling preference pairs, PII masking, NFC, the summary, `kovr export-feedback`, and
the admin-only download (404 for everyone else)."""

from __future__ import annotations

import datetime as dt
import io
import json
import unicodedata
import zipfile
from pathlib import Path
from typing import Any

import httpx
import pytest
from pymongo import MongoClient

from backend.chat.training_data import mask_pii
from backend.services.feedback_export import ExportOptions, FeedbackExport, build_export
from kovr.cli import main
from tests.backend.conftest import LiveServer, MakeClient, signup_and_login
from tests.backend.feedback_seed import CHOSEN, GREETING, GREETING_ANSWER, REJECTED, seed

START = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)


@pytest.fixture(scope="module")
def seeded(live: LiveServer, mongo_uri: str) -> None:
    with MongoClient[dict[str, Any]](mongo_uri) as client:
        seed(client[live.settings.mongodb_db], START)


@pytest.fixture
async def export(live: LiveServer, seeded: None) -> FeedbackExport:
    return await build_export(live.db, ExportOptions())


async def test_consent_is_off_by_default_and_set_through_the_api(client: httpx.AsyncClient) -> None:
    await signup_and_login(client)
    assert (await client.get("/api/v1/users/me")).json()["training_consent"] is False
    on = await client.patch("/api/v1/users/me", json={"training_consent": True})
    assert on.status_code == 200 and on.json()["training_consent"] is True
    assert (await client.get("/api/v1/users/me")).json()["training_consent"] is True
    off = await client.patch("/api/v1/users/me", json={"training_consent": False})
    assert off.json()["training_consent"] is False
    assert (await client.patch("/api/v1/users/me", json={"training_consent": "maybe"})).status_code == 422


async def test_sft_records_from_positive_answers_of_consenting_users(export: FeedbackExport) -> None:
    assert all(set(r) == {"instruction", "input", "output"} for r in export.sft)
    by_output = {r["output"]: r for r in export.sft}
    assert set(by_output) == {GREETING_ANSWER, CHOSEN, "세종대왕이 훈민정음을 만들었습니다."}
    assert by_output[GREETING_ANSWER] == {"instruction": GREETING, "input": "", "output": GREETING_ANSWER}
    trip = by_output[CHOSEN]
    assert trip["instruction"].endswith("제주도 여행지를 추천해 주세요.")
    assert trip["input"] == f"사용자: {GREETING}\nKoVR: {GREETING_ANSWER}"  # the path before the question
    assert REJECTED not in by_output and "비밀 답" not in by_output  # negative / no consent


async def test_pii_is_masked_and_text_is_nfc(export: FeedbackExport) -> None:
    text = json.dumps([export.sft, export.preference], ensure_ascii=False)
    for secret in ("hong.gildong@example.com", "010-1234-5678", "9876-5432", "900101-1234567", "secret@"):
        assert secret not in text, secret
    trip = next(r for r in export.sft if r["output"] == CHOSEN)
    masked = "제 메일은 <EMAIL> 이고 전화는 <PHONE>, 회사는 <PHONE>, 주민번호는 <RRN> 입니다."
    assert trip["instruction"].startswith(masked)
    for record in export.sft + export.preference:
        assert all(unicodedata.is_normalized("NFC", value) for value in record.values())
    assert any(r["instruction"] == "한글은 누가 만들었나요?" for r in export.sft)
    assert export.summary["pii_masked"] == {"email": 1, "phone": 2, "rrn": 1}  # once per distinct text


@pytest.mark.parametrize(("text", "masked"), [
    ("메일 kim.minji+kovr@mail.example.co.kr 로", "메일 <EMAIL> 로"),
    ("010-1234-5678 / 01012345678 / 010 1234 5678", "<PHONE> / <PHONE> / <PHONE>"),
    ("+82 10-1234-5678, +82-10-1234-5678, +821012345678", "<PHONE>, <PHONE>, <PHONE>"),
    ("서울 02-123-4567, 부산 051-123-4567", "서울 <PHONE>, 부산 <PHONE>"),
    ("주민번호 900101-1234567 또는 9001011234567", "주민번호 <RRN> 또는 <RRN>"),
    ("1443년, 2024-01-01, 12,000원, 버전 3.11.2", "1443년, 2024-01-01, 12,000원, 버전 3.11.2"),  # not PII
])
def test_pii_patterns(text: str, masked: str) -> None:
    assert mask_pii(text) == masked


async def test_preference_pairs_come_from_siblings_rated_differently(export: FeedbackExport) -> None:
    assert len(export.preference) == 1
    pair = export.preference[0]
    assert set(pair) == {"prompt", "chosen", "rejected"}
    assert (pair["chosen"], pair["rejected"]) == (CHOSEN, REJECTED)
    assert "### 명령어:\n제 메일은 <EMAIL>" in pair["prompt"] and pair["prompt"].endswith("### 응답:\n")
    assert f"사용자: {GREETING}" in pair["prompt"]  # the context on the path, as KULLM input


async def test_summary_counts_what_was_written_and_dropped(export: FeedbackExport) -> None:
    summary = export.summary
    assert summary["files"] == {"sft.jsonl": 3, "preference.jsonl": 1}
    assert summary["consenting_users"] >= 1 and summary["min_rating"] == 1
    assert summary["dropped"] == {"no_consent": 2, "incomplete": 1, "empty": 1, "too_long": 1, "duplicate": 1}
    assert summary["limits"]["max_output_chars"] == 8000


async def test_since_and_min_rating_narrow_the_export(live: LiveServer, seeded: None) -> None:
    later = await build_export(live.db, ExportOptions(since=START + dt.timedelta(days=1)))
    assert later.sft == [] and later.preference == [] and later.summary["dropped"]["no_consent"] == 0
    everything = await build_export(live.db, ExportOptions(min_rating=-1))
    assert REJECTED in {r["output"] for r in everything.sft}


def test_cli_writes_the_three_files(live: LiveServer, seeded: None, mongo_uri: str, tmp_path: Path,
                                    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("KOVR_MONGODB_URI", mongo_uri)
    monkeypatch.setenv("KOVR_MONGODB_DB", live.settings.mongodb_db)
    out = tmp_path / "export"
    assert main(["export-feedback", "--output", str(out), "--since", "2026-03-01", "--min-rating", "1"]) == 0
    assert "sft.jsonl 3, preference.jsonl 1" in capsys.readouterr().out
    lines = (out / "sft.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(lines) == 3 and all(set(json.loads(line)) == {"instruction", "input", "output"} for line in lines)
    assert len((out / "preference.jsonl").read_text(encoding="utf-8").splitlines()) == 1
    summary = json.loads((out / "data_summary.json").read_text(encoding="utf-8"))
    assert summary["since"].startswith("2026-03-01") and summary["dropped"]["duplicate"] == 1


async def _admin(make_client: MakeClient, live: LiveServer) -> httpx.AsyncClient:
    admin = await make_client()
    account = await signup_and_login(admin)
    await live.db.users.update_one({"email": account["email"]}, {"$set": {"role": "admin"}})
    tokens = await admin.post("/api/v1/auth/token", data={"username": account["email"],
                                                          "password": account["password"]})
    admin.headers["Authorization"] = f"Bearer {tokens.json()['access_token']}"  # a fresh sign-in sees the role
    return admin


async def test_download_is_for_admins_only(make_client: MakeClient, live: LiveServer, seeded: None) -> None:
    anonymous, user = await make_client(), await make_client()
    await signup_and_login(user)
    for client in (anonymous, user):
        refused = await client.get("/api/v1/admin/export-feedback")
        assert refused.status_code == 404 and refused.json()["error"]["code"] == "not_found"
    admin = await _admin(make_client, live)
    response = await admin.get("/api/v1/admin/export-feedback", params={"since": "2026-03-01"})
    assert response.status_code == 200 and response.headers["content-type"] == "application/zip"
    archive = zipfile.ZipFile(io.BytesIO(response.content))
    assert sorted(archive.namelist()) == ["data_summary.json", "preference.jsonl", "sft.jsonl"]
    summary: dict[str, Any] = json.loads(archive.read("data_summary.json"))
    assert summary["files"] == {"sft.jsonl": 3, "preference.jsonl": 1}
    assert "<EMAIL>" in archive.read("sft.jsonl").decode()
