"""The settings page's usage chart: bar geometry for a server-drawn SVG (ui_templates/partials/
usage_chart.html), so the page needs no charting library and no script. Korean first."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from backend.schemas.usage import UsageDay, UsagePublic

WIDTH, HEIGHT, TOP, BOTTOM, LEFT = 600, 180, 14, 24, 4  # viewBox units; it scales with the page
KST = dt.timezone(dt.timedelta(hours=9))


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    label: str  # the bar's <title>: its day and numbers


@dataclass(frozen=True)
class Chart:
    width: int
    height: int
    baseline: float
    bars: list[Bar]
    peak: int
    first_day: str
    last_day: str
    summary: str  # the <desc>: what a screen reader says instead of the bars


def _day_name(day: dt.date, locale: str) -> str:
    return day.strftime("%b %d") if locale == "en" else f"{day.month}월 {day.day}일"


def _label(day: UsageDay, locale: str) -> str:
    if locale == "en":
        return (f"{_day_name(day.day, locale)}: {day.messages} messages, {day.generated_tokens:,} generated, "
                f"{day.prompt_tokens:,} prompt tokens")
    return (f"{_day_name(day.day, locale)}: 메시지 {day.messages}개, 생성 토큰 {day.generated_tokens:,}개, "
            f"입력 토큰 {day.prompt_tokens:,}개")


def _summary(report: UsagePublic, peak: UsageDay, locale: str) -> str:
    total = sum(d.generated_tokens for d in report.days)
    if locale == "en":
        return (f"Generated tokens per day over the last {len(report.days)} days: {total:,} in all; "
                f"the busiest day was {_day_name(peak.day, locale)} with {peak.generated_tokens:,}.")
    return (f"최근 {len(report.days)}일 동안 날마다 생성된 토큰 수입니다. 모두 {total:,}개이며, 가장 많은 날은 "
            f"{_day_name(peak.day, locale)}({peak.generated_tokens:,}개)입니다.")


def build(report: UsagePublic, locale: str) -> Chart:
    """One bar per day for generated tokens, scaled to the busiest day (a day without use has none)."""
    peak_day = max(report.days, key=lambda d: d.generated_tokens)
    peak = max(1, peak_day.generated_tokens)
    slot = (WIDTH - LEFT) / len(report.days)
    baseline = HEIGHT - BOTTOM
    bars = []
    for i, day in enumerate(report.days):
        height = (baseline - TOP) * day.generated_tokens / peak
        bars.append(Bar(x=round(LEFT + i * slot + slot * 0.15, 2), y=round(baseline - height, 2),
                        width=round(slot * 0.7, 2), height=round(height, 2), label=_label(day, locale)))
    return Chart(WIDTH, HEIGHT, baseline, bars, peak_day.generated_tokens, _day_name(report.days[0].day, locale),
                 _day_name(report.days[-1].day, locale), _summary(report, peak_day, locale))


def reset_text(report: UsagePublic, locale: str) -> str:
    """When today's quota starts over, in the reader's time: Korean time for Korean, UTC for English."""
    at = report.quota.resets_at
    if locale == "en":
        return at.strftime("%Y-%m-%d %H:%M UTC")
    return at.astimezone(KST).strftime("%Y-%m-%d %H:%M") + " (한국 시간)"
