"""Every user-facing text, Korean first with English second, and the one locale resolver.

Error codes (raised as `backend.core.errors.AppError`), chat statuses and page labels share this
one catalogue, so an API error, an SSE error event and a page toast say the same thing in the
same language. The locale: the `kovr_lang` cookie, else Accept-Language, else the setting.
"""

from __future__ import annotations

from collections.abc import Callable

from starlette.requests import HTTPConnection

LANG_COOKIE = "kovr_lang"
LOCALES = ("ko", "en")

# key -> (Korean, English)
TEXT: dict[str, tuple[str, str]] = {
    # Errors: the codes of AppError (their HTTP status is in backend/core/errors.py).
    "bad_request": ("잘못된 요청입니다.", "Bad request."),
    "validation_error": ("입력값이 올바르지 않습니다.", "The input is not valid."),
    "invalid_text": ("글자로 쓸 수 없는 문자가 들어 있습니다(짝 없는 서로게이트).",
                     "The text contains characters that are not valid Unicode (a lone surrogate)."),
    "quota_exceeded": (
        "이미지 저장 공간이 부족합니다: {used} / {quota} 사용 중입니다. 대화를 지우면 공간이 생깁니다.",
        "Not enough image storage: {used} of {quota} in use. Deleting conversations frees space.",
    ),
    "daily_quota_exceeded": (
        "오늘 사용할 수 있는 한도(메시지 수 또는 생성 토큰)를 모두 썼습니다. "
        "한도는 {reset_kst}(한국 시간, {reset_utc})에 초기화됩니다. 약 {hours}시간 남았습니다.",
        "You have used today's quota (messages or generated tokens). It resets at {reset_utc}, "
        "in about {hours} hours.",
    ),
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
    "share_not_found": ("공유 링크를 찾을 수 없습니다. 폐기되었을 수 있습니다.",
                        "Share link not found. It may have been revoked."),
    "share_too_large": ("대화가 너무 길어 공유할 수 없습니다.", "The conversation is too long to share."),
    "user_not_found": ("사용자를 찾을 수 없습니다.", "User not found."),
    "cannot_disable_self": ("자기 자신의 계정은 비활성화할 수 없습니다.", "You cannot disable your own account."),
    "invalid_cursor": ("페이지 커서가 올바르지 않습니다.", "The page cursor is not valid."),
    "method_not_allowed": ("허용되지 않은 메서드입니다.", "Method not allowed."),
    "payload_too_large": ("요청 본문이 너무 큽니다.", "The request body is too large."),
    "service_unavailable": (
        "서비스를 일시적으로 사용할 수 없습니다.",
        "The service is temporarily unavailable.",
    ),
    "internal_error": ("서버 내부 오류가 발생했습니다.", "Internal server error."),
    # Chat errors and statuses.
    "model_unavailable": (
        "모델 서버에 연결할 수 없습니다. 잠시 후 다시 시도해 주세요.",
        "The model server cannot be reached. Please try again shortly.",
    ),
    "model_overloaded": (
        "모델 서버가 혼잡합니다. 잠시 후 다시 시도해 주세요.",
        "The model server is busy. Please try again shortly.",
    ),
    "model_timeout": (
        "모델 서버의 응답이 너무 늦어 생성을 중단했습니다. 다시 시도해 주세요.",
        "The model server took too long to answer; generation was stopped. Please try again.",
    ),
    "model_error": (
        "답변을 생성하는 중 모델 서버에서 오류가 발생했습니다.",
        "The model server failed while generating the answer.",
    ),
    "model_rejected": (
        "모델 서버가 요청을 거부했습니다. 입력이나 이미지를 확인해 주세요.",
        "The model server rejected the request. Check the input or image.",
    ),
    "prompt_too_long": (
        "메시지가 너무 길어 모델이 처리할 수 있는 길이를 넘었습니다. 내용을 줄여 다시 보내 주세요.",
        "The message is longer than the model can read. Please shorten it and try again.",
    ),
    "generation_in_progress": (
        "이 대화에서 이미 답변을 생성하고 있습니다. 끝나거나 중지한 뒤 다시 보내 주세요.",
        "An answer is already being generated in this conversation. Wait or stop it first.",
    ),
    "message_not_found": ("메시지를 찾을 수 없습니다.", "Message not found."),
    "not_regenerable": (
        "답변 생성이 끝난 뒤에만 다시 생성할 수 있습니다.",
        "An answer can be regenerated only after it has finished.",
    ),
    "not_editable": ("내가 보낸 메시지만 수정할 수 있습니다.", "Only your own messages can be edited."),
    "not_continuable": (
        "길이 제한으로 끝난 답변의 마지막 메시지만 이어서 생성할 수 있습니다.",
        "Only an answer that was cut off by the length limit, and is the last of its branch, can be continued.",
    ),
    "message_streaming": (
        "이 메시지 아래에서 답변을 생성하고 있습니다. 끝나거나 중지한 뒤 삭제해 주세요.",
        "An answer below this message is being generated. Wait or stop it before deleting.",
    ),
    "not_streaming": ("생성 중인 답변이 아닙니다.", "This answer is not being generated."),
    "empty_message": ("메시지 내용이 비어 있습니다.", "The message is empty."),
    "message_too_long": ("메시지가 너무 깁니다.", "The message is too long."),
    "invalid_parameters": ("생성 설정값이 허용 범위를 벗어났습니다.", "A generation parameter is out of range."),
    "image_not_found": ("이미지를 찾을 수 없습니다.", "Image not found."),
    "image_too_large": ("이미지 파일이 너무 큽니다.", "The image file is too large."),
    "image_too_many_pixels": ("이미지 해상도가 너무 큽니다.", "The image has too many pixels."),
    "image_unsupported": (
        "PNG, JPEG, WebP 이미지만 올릴 수 있습니다.",
        "Only PNG, JPEG and WebP images are accepted.",
    ),
    "image_invalid": ("이미지 파일을 읽을 수 없습니다. 손상된 파일일 수 있습니다.", "The image cannot be read."),
    "too_many_images": ("한 메시지에 첨부할 수 있는 이미지 수를 넘었습니다.", "Too many images in one message."),
    "images_not_supported": (
        "현재 모델은 이미지를 이해하지 못합니다. 텍스트로만 질문해 주세요.",
        "The current model does not understand images. Please ask in text.",
    ),
    "interrupted": (
        "서버가 다시 시작되어 답변 생성이 중단되었습니다.",
        "The server restarted and the answer was interrupted.",
    ),
    "chat_rate_limited": (
        "메시지를 너무 자주 보냈습니다. 잠시 후 다시 시도해 주세요.",
        "Too many messages. Please try again shortly.",
    ),
    "image_url_not_allowed": (
        "이미지는 data: URI로만 보낼 수 있습니다. 주소(URL)의 이미지는 가져오지 않습니다.",
        "Images must be sent as data: URIs; image URLs are never fetched.",
    ),
    "invalid_event_id": (
        "이어 받을 위치(Last-Event-ID)가 올바르지 않습니다.",
        "The resume position (Last-Event-ID) is not valid.",
    ),
    "server_restarting": (
        "서버가 다시 시작되고 있습니다. 잠시 후 새로고침하면 답변을 이어서 볼 수 있습니다.",
        "The server is restarting. Reload shortly to follow the answer again.",
    ),
    # Page labels.
    "app_tagline": ("한국어로 묻고, 이미지로 보여 주세요.", "Ask in Korean, show with images."),
    "login": ("로그인", "Sign in"),
    "signup": ("회원가입", "Sign up"),
    "logout": ("로그아웃", "Sign out"),
    "email": ("이메일", "Email"),
    "password": ("비밀번호", "Password"),
    "password_hint": ("8자 이상", "At least 8 characters"),
    "display_name": ("이름", "Display name"),
    "no_account": ("계정이 없으신가요?", "No account yet?"),
    "have_account": ("이미 계정이 있으신가요?", "Already have an account?"),
    "new_chat": ("새 대화", "New chat"),
    "conversations": ("대화 목록", "Conversations"),
    "no_conversations": ("아직 대화가 없습니다.", "No conversations yet."),
    "search_conversations": ("대화 검색", "Search conversations"),
    "export": ("대화 내보내기 (Markdown)", "Export conversation (Markdown)"),
    "no_search_results": ("찾는 대화가 없습니다.", "No matching conversations."),
    "settings": ("설정", "Settings"),
    "rename": ("이름 바꾸기", "Rename"),
    "delete": ("삭제", "Delete"),
    "save": ("저장", "Save"),
    "cancel": ("취소", "Cancel"),
    "confirm_delete": ("이 대화를 삭제할까요? 되돌릴 수 없습니다.", "Delete this conversation? This cannot be undone."),
    "placeholder": ("메시지를 입력하세요", "Type a message"),
    "composer_hint": ("Enter 전송 · Shift+Enter 줄바꿈 · 이미지는 붙여 넣거나 끌어다 놓기",
                      "Enter sends · Shift+Enter adds a line · paste or drop images"),
    "send": ("보내기", "Send"),
    "stop": ("중지", "Stop"),
    "regenerate": ("다시 생성", "Regenerate"),
    "copy": ("복사", "Copy"),
    "copied": ("복사했습니다", "Copied"),
    "good": ("좋아요", "Good answer"),
    "bad": ("별로예요", "Bad answer"),
    "attach": ("이미지 첨부", "Attach image"),
    "remove": ("빼기", "Remove"),
    "drop_here": ("이미지를 여기에 놓으세요", "Drop the image here"),
    "empty_title": ("무엇이든 물어보세요", "Ask me anything"),
    "empty_hint": (
        "한국어로 질문하거나 이미지를 붙여 넣어 보세요.",
        "Ask a question in Korean, or paste an image.",
    ),
    "generating": ("답변을 생성하는 중…", "Generating the answer…"),
    "status_stopped": ("생성을 중지했습니다.", "Generation stopped."),
    "status_error": ("답변을 완성하지 못했습니다.", "The answer could not be completed."),
    "edit": ("수정", "Edit"),
    "edit_send": ("수정해서 보내기", "Save & send"),
    "continue": ("계속", "Continue"),
    "continue_hint": ("답변이 길이 제한으로 끊겼습니다. 이어서 생성합니다.",
                      "The answer was cut off by the length limit; continue it."),
    "previous_branch": ("이전 버전", "Previous version"),
    "next_branch": ("다음 버전", "Next version"),
    "delete_message": ("메시지 삭제", "Delete message"),
    "confirm_delete_message": ("이 메시지와 그 아래 대화를 모두 삭제할까요? 되돌릴 수 없습니다.",
                               "Delete this message and everything after it? This cannot be undone."),
    "demo_model": ("데모 모델", "Demo model"),
    "demo_note": (
        "작은 데모 모델이 답합니다. 실제 배포에서는 Polyglot-ko 모델을 설정하세요.",
        "A small demo model is answering; a real deployment configures a Polyglot-ko model.",
    ),
    "menu": ("메뉴", "Menu"),
    "you": ("나", "You"),
    "assistant": ("KoVR", "KoVR"),
    "profile": ("프로필", "Profile"),
    "change_password": ("비밀번호 변경", "Change password"),
    "current_password": ("현재 비밀번호", "Current password"),
    "delete_account": ("계정 삭제", "Delete account"),
    "delete_account_hint": ("계정과 모든 대화, 이미지, API 토큰이 지워지며 되돌릴 수 없습니다. "
                            "남기고 싶은 대화는 먼저 내보내세요.",
                            ("Your account and all its conversations, images and API tokens are erased; this cannot be "
                             "undone. Export the conversations you want to keep first.")),
    "delete_account_confirm": ("되돌릴 수 없다는 것을 이해했습니다", "I understand this cannot be undone"),
    "new_password": ("새 비밀번호", "New password"),
    "api_tokens": ("API 토큰", "API tokens"),
    "api_tokens_hint": (
        "프로그램에서 `Authorization: Bearer <토큰>`으로 API와 /v1/chat/completions를 사용할 수 있습니다.",
        "Programs use the API and /v1/chat/completions with `Authorization: Bearer <token>`.",
    ),
    "token_name": ("토큰 이름", "Token name"),
    "create_token": ("토큰 만들기", "Create token"),
    "token_created": (
        "새 토큰입니다. 지금 한 번만 보여 드리니 복사해 두세요.",
        "Your new token. It is shown only this once; copy it now.",
    ),
    "revoke": ("폐기", "Revoke"),
    "no_tokens": ("만든 토큰이 없습니다.", "No tokens yet."),
    "last_used": ("마지막 사용", "Last used"),
    "never": ("사용 안 함", "never"),
    "saved": ("저장했습니다.", "Saved."),
    "answer_style": ("답변 스타일", "Answer style"),
    "answer_style_hint": (
        "채팅 화면의 답변에 적용됩니다. API는 요청의 parameters를 따릅니다.",
        "Applies to answers in the chat screen; the API follows each request's parameters.",
    ),
    "style_precise": ("정확하게: 매번 같은 답 (greedy)", "Precise: the same answer every time (greedy)"),
    "style_balanced": ("균형 있게: 기본값", "Balanced: the default"),
    "style_creative": ("창의적으로: 더 다양한 답", "Creative: more varied answers"),
    "password_changed": ("비밀번호를 바꿨습니다. 다른 기기의 로그인은 종료되었습니다.",
                         "Password changed; other sign-ins were ended."),
    "language": ("언어", "Language"),
    "back_to_chat": ("대화로 돌아가기", "Back to chat"),
    "error_generic": ("문제가 발생했습니다. 잠시 후 다시 시도해 주세요.", "Something went wrong. Please try again."),
    "error_network": ("서버에 연결할 수 없습니다. 네트워크를 확인해 주세요.",
                      "Cannot reach the server. Check the network."),
    "uploading": ("올리는 중…", "Uploading…"),
    "image": ("이미지", "Image"),
    "skip_to_composer": ("입력창으로 건너뛰기", "Skip to the message box"),
    # Usage (settings) and the admin page.
    "usage": ("사용량", "Usage"),
    "usage_hint": ("최근 30일 동안 날마다 생성된 토큰 수입니다(UTC 기준 날짜).",
                   "Tokens generated per day over the last 30 days (UTC days)."),
    "usage_chart_title": ("최근 30일 일별 생성 토큰", "Generated tokens per day, last 30 days"),
    "usage_peak": ("최대", "Peak"),
    "usage_this_month": ("이번 달 합계", "This month"),
    "usage_messages": ("메시지", "Messages"),
    "usage_generated": ("생성 토큰", "Generated tokens"),
    "usage_prompt": ("입력 토큰", "Prompt tokens"),
    "usage_today_quota": ("오늘 사용량과 한도", "Today and your daily quota"),
    "usage_resets": ("한도 초기화", "Quota resets"),
    "unlimited": ("무제한", "unlimited"),
    "admin": ("관리자", "Admin"),
    "admin_page": ("관리자 페이지", "Admin page"),
    "admin_users": ("사용자", "Users"),
    "admin_role": ("역할", "Role"),
    "admin_status": ("상태", "Status"),
    "admin_today": ("오늘 (메시지 · 토큰)", "Today (messages · tokens)"),
    "admin_month": ("이번 달 (메시지 · 토큰)", "This month (messages · tokens)"),
    "admin_today_short": ("오늘", "Today"),
    "admin_month_short": ("이번 달", "Month"),
    "admin_quota_short": ("하루 한도", "Daily quota"),
    "admin_quota": ("하루 한도 (메시지 / 토큰)", "Daily quota (messages / tokens)"),
    "admin_quota_hint": ("비우면 기본값, 0은 무제한", "Empty: the default; 0: unlimited"),
    "admin_actions": ("작업", "Actions"),
    "admin_active": ("활성", "Active"),
    "admin_disabled": ("비활성", "Disabled"),
    "admin_disable": ("비활성화", "Disable"),
    "admin_enable": ("활성화", "Enable"),
    "admin_next_page": ("다음 사용자", "More users"),
    "admin_default": ("기본값", "default"),
    "admin_model": ("모델 서버", "Model server"),
    "admin_model_id": ("모델", "Model"),
    "admin_device": ("장치", "Device"),
    "admin_model_down": ("모델 서버에 연결할 수 없습니다.", "The model server cannot be reached."),
    "admin_queue": ("대기 중인 요청", "Queued requests"),
    "admin_running": ("생성 중인 요청", "Running requests"),
    "admin_tps": ("요청당 초당 토큰 (최근)", "Tokens/s per request (recent)"),
    "admin_throughput": ("전체 초당 토큰 (최근)", "Tokens/s overall (recent)"),
    "admin_generated": ("누적 생성 토큰", "Tokens generated since start"),
    "admin_max_tokens": ("최대 토큰 (입력 / 전체)", "Max tokens (input / total)"),
    "admin_refresh": ("새로고침", "Refresh"),
    "admin_audit": ("감사 기록 (최근 50개)", "Audit trail (latest 50)"),
    "admin_export": ("학습 데이터 내보내기", "Training data export"),
    "admin_export_hint": ("모델 개선에 동의한 사용자의 평가된 답변을 SFT 기록과 선호 쌍(JSONL), 요약으로 "
                          "내려받습니다. 이메일과 전화번호 같은 개인정보는 가려집니다. "
                          "날짜로 좁히려면 kovr export-feedback --since 를 쓰세요.",
                          "Rated answers of users who consented, as SFT records, preference pairs (JSONL) and a "
                          "summary; emails, phone numbers and the like are masked. To narrow by date use "
                          "kovr export-feedback --since."),
    "admin_export_download": ("ZIP 내려받기", "Download ZIP"),
    "admin_no_audit": ("아직 기록이 없습니다.", "Nothing recorded yet."),
    "admin_when": ("시각", "When"),
    "admin_who": ("누가", "Who"),
    "admin_what": ("무엇을", "What"),
    "admin_target": ("대상", "Target"),
    "audit_user.disable": ("계정 비활성화", "disabled an account"),
    "audit_user.enable": ("계정 활성화", "enabled an account"),
    "audit_user.quota": ("한도 변경", "changed a quota"),
    # Share links and training consent.
    "share": ("공유", "Share"),
    "share_conversation": ("대화 공유 링크 만들기", "Create a share link"),
    "share_created": ("공유 링크를 만들었습니다. 링크가 있는 사람은 로그인 없이 지금까지의 대화를 볼 수 있습니다.",
                      "Share link created. Anyone with the link can read the conversation so far, without an account."),
    "share_link": ("공유 링크", "Share link"),
    "share_revoked": ("공유 링크를 폐기했습니다.", "The share link was revoked."),
    "shares": ("공유한 대화", "Shared conversations"),
    "shares_hint": ("공유 링크는 만든 때의 대화를 보여 줍니다. 폐기하면 링크가 바로 사라집니다.",
                    "A share link shows the conversation as it was when shared. Revoking removes it at once."),
    "no_shares": ("공유한 대화가 없습니다.", "Nothing shared yet."),
    "shared_on": ("공유한 때", "Shared"),
    "shared_conversation": ("공유된 대화", "Shared conversation"),
    "shared_note": ("KoVR에서 공유된 대화입니다 (읽기 전용).", "A conversation shared from KoVR (read-only)."),
    "open_kovr": ("KoVR 열기", "Open KoVR"),
    "close": ("닫기", "Close"),
    "training_consent_title": ("모델 개선", "Model improvement"),
    "training_consent": ("내 대화를 모델 개선에 사용", "Use my conversations to improve the model"),
    "training_consent_hint": (
        "켜면 내가 평가(좋아요/별로예요)한 답변과 그 대화가 개인정보(이메일, 전화번호 등)를 가린 뒤 학습 데이터로 "
        "쓰일 수 있습니다. 기본값은 꺼짐이며 언제든 끌 수 있습니다.",
        "When on, answers you rated (good/bad) and their conversations may become training data, with personal "
        "details (emails, phone numbers, …) masked. Off by default; you can turn it off at any time.",
    ),
}


def message_for(code: str, locale: str = "ko") -> str:
    ko, en = TEXT.get(code, TEXT["bad_request"])
    return en if locale == "en" else ko


def locale_from_header(accept_language: str | None, default: str = "ko") -> str:
    """Pick 'ko' or 'en' from Accept-Language by the highest q value; anything else → default."""
    if not accept_language:
        return default
    best, best_q = default, -1.0
    for part in accept_language[:1000].split(","):
        lang, _, params = part.strip().partition(";")
        q = 1.0
        if params.strip().startswith("q="):
            try:
                q = float(params.strip()[2:])
            except ValueError:
                continue
        primary = lang.strip().lower().split("-")[0]
        if primary in LOCALES and q > best_q:
            best, best_q = primary, q
    return best


def request_locale(conn: HTTPConnection) -> str:
    """The one resolver: cookie, then Accept-Language, then the configured default."""
    settings = getattr(conn.app.state, "settings", None)
    default = settings.default_locale if settings is not None else "ko"
    chosen = conn.cookies.get(LANG_COOKIE)
    if chosen in LOCALES:
        return chosen
    return locale_from_header(conn.headers.get("accept-language"), default)


def translator(locale: str) -> Callable[[str], str]:
    index = 1 if locale == "en" else 0

    def t(key: str) -> str:
        pair = TEXT.get(key)
        return key if pair is None else pair[index]

    return t
