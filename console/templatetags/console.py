"""Template filters of the console: Markdown as the model or a page wrote it, and sources as operators know them."""

from pathlib import PurePosixPath

from django import template
from django.utils.safestring import SafeString, mark_safe
from markdown_it import MarkdownIt

register = template.Library()

# CommonMark with tables; raw HTML is escaped, not passed through, and unsafe link schemes are refused.
_markdown = MarkdownIt("commonmark", {"html": False, "linkify": False}).enable("table")


@register.filter
def markdown(text: str) -> SafeString:
    return mark_safe(_markdown.render(text or ""))  # html=False: every character of the input is escaped


@register.filter
def source_label(location: str) -> str:
    """A web page as its URL; an uploaded document by its file name, not its storage path."""
    if not location or location.startswith(("http://", "https://")):
        return location
    return PurePosixPath(location.removeprefix("file://")).name or location
