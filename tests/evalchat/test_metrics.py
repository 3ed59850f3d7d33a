"""Judge-free metrics of one answer (kovr.chat_metrics): exact values on small Korean texts."""

from __future__ import annotations

import subprocess
import sys

import pytest

from kovr.chat_metrics import answer_metrics, chrf, distinct_2, hangul_share, longest_repeat, summarize


def test_hangul_share_counts_letters_only() -> None:
    assert hangul_share("안녕하세요 123!") == 1.0
    assert hangul_share("안녕 hi") == 0.5
    assert hangul_share("ㅋㅋ") == 1.0  # compatibility jamo are Hangul too
    assert hangul_share("12 + 3 = 15") is None


def test_repetition_measures() -> None:
    assert distinct_2("하나 둘 셋 넷") == 1.0
    assert distinct_2("좋아요 좋아요 좋아요 좋아요") == pytest.approx(1 / 3)
    assert distinct_2("한단어") is None
    assert longest_repeat("가 나 다 라") == 0
    assert longest_repeat("오늘 날씨 맑음 그리고 오늘 날씨 맑음") == 3
    assert longest_repeat("네 네 네 네") == 3  # overlapping occurrences count: a loop of one word


def test_chrf_bounds_and_order() -> None:
    reference = "도서관이 일요일에는 일찍 문을 닫습니다."
    assert chrf(reference, reference) == pytest.approx(100.0)
    assert chrf("xyz", reference) == 0.0
    close = chrf("도서관은 일요일에 일찍 닫아요.", reference)
    far = chrf("오늘 점심은 비빔밥입니다.", reference)
    assert 0 < far < close < 100
    assert chrf("도서관이  일요일에는 일찍\n문을 닫습니다.", reference) == pytest.approx(100.0)  # spaces ignored


def test_answer_metrics_flags() -> None:
    row = answer_metrics("### 명령어:\n죄송하지만 답변할 수 없습니다 \ufffd", reference="참고 답변")
    assert row["template_leak"] and row["refused"] and row["broken_chars"] == 1 and not row["empty"]
    assert "chrf" in row
    empty = answer_metrics("   ")
    assert empty["empty"] and empty["chars"] == 0 and empty["hangul_share"] is None and "chrf" not in empty


def test_summarize_means_and_rates() -> None:
    rows = [answer_metrics("안녕하세요 반갑습니다", "안녕하세요"), answer_metrics("")]
    summary = summarize(rows)
    assert summary["empty_rate"] == 0.5
    assert summary["hangul_share"] == 1.0  # the empty answer has no letters and does not count
    assert summary["template_leak_rate"] == 0.0
    assert "chrf" in summary


def test_metrics_module_is_pure_python() -> None:
    code = "import sys, kovr.chat_metrics; print(any(m in sys.modules for m in ('torch', 'model_server', 'httpx')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
