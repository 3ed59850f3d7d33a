"""UI text, Korean first with an English locale. The locale: `kovr_lang` cookie, else Accept-Language."""

from __future__ import annotations

from starlette.requests import Request

from backend.core.messages import locale_from_header

LANG_COOKIE = "kovr_lang"
LOCALES = ("ko", "en")

TEXT: dict[str, tuple[str, str]] = {
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
    "previous_answers": ("이전 답변", "Previous answers"),
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
    "delete_account_hint": ("계정과 모든 대화, 이미지, API 토큰이 지워지며 되돌릴 수 없습니다. 남기고 싶은 대화는 먼저 내보내세요.",
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
    "password_changed": ("비밀번호를 바꿨습니다. 다른 기기의 로그인은 종료되었습니다.", "Password changed; other sign-ins were ended."),
    "language": ("언어", "Language"),
    "back_to_chat": ("대화로 돌아가기", "Back to chat"),
    "error_generic": ("문제가 발생했습니다. 잠시 후 다시 시도해 주세요.", "Something went wrong. Please try again."),
    "error_network": ("서버에 연결할 수 없습니다. 네트워크를 확인해 주세요.", "Cannot reach the server. Check the network."),
    "uploading": ("올리는 중…", "Uploading…"),
    "image": ("이미지", "Image"),
    "image_unsupported": ("PNG, JPEG, WebP 이미지만 올릴 수 있습니다.", "Only PNG, JPEG and WebP images are accepted."),
    "image_too_large": ("이미지 파일이 너무 큽니다 (최대 10MB).", "The image file is too large (10 MB at most)."),
    "skip_to_composer": ("입력창으로 건너뛰기", "Skip to the message box"),
}


def request_locale(request: Request, default: str = "ko") -> str:
    chosen = request.cookies.get(LANG_COOKIE)
    if chosen in LOCALES:
        return chosen
    return locale_from_header(request.headers.get("accept-language"), default)


def translator(locale: str):  # type: ignore[no-untyped-def]
    index = 1 if locale == "en" else 0

    def t(key: str) -> str:
        pair = TEXT.get(key)
        return key if pair is None else pair[index]

    return t
