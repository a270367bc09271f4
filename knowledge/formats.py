"""Which documents a crawl reads, by content type, extension and magic bytes (standard library only).

Kept apart from the extractors so that validating crawl input (command, forms, API) loads no parser.
"""

import codecs
import io
import posixpath
import re
import zipfile
from urllib.parse import urlsplit

Kind = str  # "html" | "pdf" | "docx" | "xlsx" | "txt"

# --- detection -------------------------------------------------------------------------------------------

CONTENT_TYPES: dict[str, Kind] = {
    "text/html": "html",
    "application/xhtml+xml": "html",
    "application/pdf": "pdf",
    "application/x-pdf": "pdf",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": "docx",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": "xlsx",
    "text/plain": "txt",
    "text/markdown": "txt",
    "text/csv": "txt",
}
EXTENSIONS: dict[str, Kind] = {
    ".html": "html",
    ".htm": "html",
    ".xhtml": "html",
    ".pdf": "pdf",
    ".docx": "docx",
    ".xlsx": "xlsx",
    ".txt": "txt",
    ".md": "txt",
    ".csv": "txt",
}
_ZIP_MAGIC = b"PK\x03\x04"
SUPPORTED_SUFFIXES = tuple(EXTENSIONS)  # what an uploaded file may end with


def detect_kind(*, content_type: str, url: str, head: bytes) -> Kind | None:
    """The document kind by content type, then URL extension, then magic bytes; None when unsupported.

    Generic types (application/octet-stream, empty) decide nothing, so the extension and the bytes do.
    """
    return _kind_by_content_type(content_type) or _kind_by_extension(url) or _kind_by_magic(head)


def media_type(content_type: str) -> str:
    return content_type.split(";", 1)[0].strip().lower()


def charset_of(content_type: str) -> str | None:
    match = re.search(r"charset\s*=\s*[\"']?([\w.:-]+)", content_type, re.IGNORECASE)
    return match.group(1) if match else None


def _kind_by_content_type(content_type: str) -> Kind | None:
    return CONTENT_TYPES.get(media_type(content_type))


def _kind_by_extension(url: str) -> Kind | None:
    _, extension = posixpath.splitext(urlsplit(url).path.lower())
    return EXTENSIONS.get(extension)


def _kind_by_magic(head: bytes) -> Kind | None:
    if b"%PDF-" in head[:1024]:  # readers accept junk before the header within the first kilobyte
        return "pdf"
    if head.startswith(_ZIP_MAGIC):
        return _office_kind(head)
    start = head[:1024].lstrip(codecs.BOM_UTF8 + b" \t\r\n").lower()
    if start.startswith((b"<!doctype html", b"<html")):
        return "html"
    return None


def _office_kind(head: bytes) -> Kind | None:
    try:
        names = zipfile.ZipFile(io.BytesIO(head)).namelist()
    except zipfile.BadZipFile:
        # Only the beginning of the file: the local headers still carry the member names.
        return "docx" if b"word/" in head else "xlsx" if b"xl/" in head else None
    if any(name.startswith("word/") for name in names):
        return "docx"
    if any(name.startswith("xl/") for name in names):
        return "xlsx"
    return None
