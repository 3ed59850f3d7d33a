"""Model output as safe HTML: Markdown rendered on the server, then sanitised with nh3.

Raw HTML in the Markdown is escaped by markdown-it (html=False) and nh3 then keeps only a short
allow-list of tags, so model output can never inject markup, scripts, styles or remote images.
"""

from __future__ import annotations

import nh3
from markdown_it import MarkdownIt

_md = MarkdownIt("commonmark", {"html": False, "breaks": True, "linkify": False}).enable("table").enable(
    "strikethrough"
)

_TAGS = {
    "p", "br", "strong", "em", "del", "code", "pre", "blockquote", "ul", "ol", "li", "a", "hr",
    "h1", "h2", "h3", "h4", "h5", "h6", "table", "thead", "tbody", "tr", "th", "td",
}
_ATTRIBUTES = {"a": {"href", "title"}, "code": {"class"}, "ol": {"start"}, "th": {"style"}, "td": {"style"}}


def _code_class(tag: str, name: str, value: str) -> str | None:
    # Only the language marker markdown-it writes ("language-python") survives on <code>.
    if tag == "code" and name == "class":
        return value if value.startswith("language-") and value[9:].replace("-", "").isalnum() else None
    if name == "style":
        return value if value in ("text-align:left", "text-align:center", "text-align:right") else None
    return value


def render_markdown(text: str) -> str:
    return nh3.clean(
        _md.render(text),
        tags=_TAGS,
        attributes=_ATTRIBUTES,
        attribute_filter=_code_class,
        url_schemes={"http", "https", "mailto"},
        link_rel="noopener noreferrer nofollow",
    )
