"""User-facing error texts by stable code: Korean first, English when the client asks for it."""

from __future__ import annotations

# code -> (Korean, English)
MESSAGES: dict[str, tuple[str, str]] = {
    "bad_request": ("잘못된 요청입니다.", "Bad request."),
    "validation_error": ("입력값이 올바르지 않습니다.", "The input is not valid."),
    "not_authenticated": ("로그인이 필요합니다.", "Authentication is required."),
    "invalid_token": (
        "인증 정보가 유효하지 않거나 만료되었습니다.",
        "The credentials are invalid or expired.",
    ),
    "invalid_credentials": ("이메일 또는 비밀번호가 올바르지 않습니다.", "Incorrect email or password."),
    "account_disabled": ("비활성화된 계정입니다.", "This account is disabled."),
    "invalid_refresh_token": (
        "세션이 만료되었거나 유효하지 않습니다. 다시 로그인해 주세요.",
        "The session is invalid or expired. Please sign in again.",
    ),
    "refresh_token_reused": (
        "이미 사용된 세션 토큰입니다. 보안을 위해 이 세션을 모두 종료했습니다. 다시 로그인해 주세요.",
        "This session token was already used; the session was ended for safety. Please sign in again.",
    ),
    "csrf_failed": (
        "요청 검증(CSRF)에 실패했습니다. 페이지를 새로고침한 뒤 다시 시도해 주세요.",
        "CSRF check failed. Reload the page and try again.",
    ),
    "email_taken": ("이미 가입된 이메일입니다.", "This email is already registered."),
    "wrong_password": ("현재 비밀번호가 올바르지 않습니다.", "The current password is incorrect."),
    "rate_limited": (
        "로그인 시도가 너무 많습니다. 잠시 후 다시 시도해 주세요.",
        "Too many sign-in attempts. Please try again later.",
    ),
    "too_many_requests": (
        "요청이 너무 많습니다. 잠시 후 다시 시도해 주세요.",
        "Too many requests. Try again later.",
    ),
    "forbidden": ("권한이 없습니다.", "You do not have permission."),
    "not_found": ("요청한 항목을 찾을 수 없습니다.", "Not found."),
    "conversation_not_found": ("대화를 찾을 수 없습니다.", "Conversation not found."),
    "token_not_found": ("API 토큰을 찾을 수 없습니다.", "API token not found."),
    "user_not_found": ("사용자를 찾을 수 없습니다.", "User not found."),
    "invalid_cursor": ("페이지 커서가 올바르지 않습니다.", "The page cursor is not valid."),
    "method_not_allowed": ("허용되지 않은 메서드입니다.", "Method not allowed."),
    "payload_too_large": ("요청 본문이 너무 큽니다.", "The request body is too large."),
    "service_unavailable": (
        "서비스를 일시적으로 사용할 수 없습니다.",
        "The service is temporarily unavailable.",
    ),
    "internal_error": ("서버 내부 오류가 발생했습니다.", "Internal server error."),
}


def message_for(code: str, locale: str = "ko") -> str:
    ko, en = MESSAGES.get(code, MESSAGES["bad_request"])
    return en if locale == "en" else ko


def register_messages(extra: dict[str, tuple[str, str]]) -> None:
    """Other parts (chat, images) add their own codes here at import time."""
    MESSAGES.update(extra)


def locale_from_header(accept_language: str | None, default: str = "ko") -> str:
    """Pick 'ko' or 'en' from Accept-Language by the highest q value; anything else → default."""
    if not accept_language:
        return default
    best, best_q = default, -1.0
    for part in accept_language.split(","):
        lang, _, params = part.strip().partition(";")
        q = 1.0
        if params.strip().startswith("q="):
            try:
                q = float(params.strip()[2:])
            except ValueError:
                continue
        primary = lang.strip().lower().split("-")[0]
        if primary in ("ko", "en") and q > best_q:
            best, best_q = primary, q
    return best
