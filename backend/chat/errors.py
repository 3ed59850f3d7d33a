"""Chat errors with stable codes; their Korean/English texts join the backend's message catalogue."""

from __future__ import annotations

from backend.core.messages import message_for, register_messages

CHAT_MESSAGES: dict[str, tuple[str, str]] = {
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
        "마지막 답변만 다시 생성할 수 있으며, 생성이 끝난 뒤에만 가능합니다.",
        "Only the last answer can be regenerated, and only after it has finished.",
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
}
register_messages(CHAT_MESSAGES)


class ChatError(Exception):
    """A chat failure the user should see; ``code`` is stable, the text comes from the catalogue."""

    def __init__(self, code: str, status_code: int = 400, detail: str | None = None) -> None:
        super().__init__(detail or code)
        self.code = code
        self.status_code = status_code
        self.detail = detail  # for logs only: never shown (may hold upstream text)

    def message(self, locale: str = "ko") -> str:
        return message_for(self.code, locale)

    def payload(self, locale: str = "ko") -> dict[str, str]:
        return {"code": self.code, "message": self.message(locale)}
