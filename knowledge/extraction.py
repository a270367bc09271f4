"""Text extraction from fetched or uploaded documents: HTML, PDF, DOCX, XLSX and plain text.

HTML goes through reader-view main-content extraction (trafilatura, markdown output so that headings
stay `#` lines the chunker can split on), with a DOM walk as the fallback. Binary formats are parsed by
their usual libraries; DOCX and XLSX are zip archives and are checked for zip bombs before parsing.
Every failure is an `ExtractionError` whose message says why, for the crawl job's page error.

The parsing libraries load at the first document of their format (~0.4 s of imports together): every
worker and web process imports this module at start (the crawl tasks, the matching kind's CV reading),
and most never extract a document.
"""

from __future__ import annotations

import codecs
import datetime
import io
import posixpath
import re
import warnings
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit

import charset_normalizer

from knowledge.formats import Kind, charset_of, detect_kind, media_type

if TYPE_CHECKING:
    import lxml.html
    import pypdf
    from docx.table import Table, _Cell
    from docx.text.paragraph import Paragraph
    from openpyxl.worksheet._read_only import ReadOnlyWorksheet

MB = 1024 * 1024
MAX_UNPACKED_BYTES = 100 * MB
MAX_COMPRESSION_RATIO = 100  # real DOCX/XLSX XML packs 5-30x; bombs pack hundreds or thousands of times
RATIO_CHECK_FLOOR_BYTES = 1 * MB  # tiny archives may compress well without being dangerous
MAX_ZIP_MEMBERS = 10_000
MAX_TITLE_CHARS = 300


class ExtractionError(ValueError):
    """The document cannot give text; the message is the reason shown to operators."""


@dataclass(frozen=True)
class ExtractedDocument:
    title: str
    text: str
    kind: Kind


# --- entry point -----------------------------------------------------------------------------------------


def extract_document(*, data: bytes, content_type: str, url: str) -> ExtractedDocument:
    """Title and normalised text of a document; raises ExtractionError with the reason otherwise."""
    if not data.strip():
        raise ExtractionError("empty document")
    kind = detect_kind(content_type=content_type, url=url, head=data)
    if kind is None:
        raise ExtractionError(f"unsupported content type {media_type(content_type) or 'unknown'}")
    title, text = _EXTRACTORS[kind](data, charset=charset_of(content_type), url=url)
    text = normalize_whitespace(text)
    if not text:
        raise ExtractionError("empty document")
    return ExtractedDocument(title=" ".join(title.split())[:MAX_TITLE_CHARS], text=text, kind=kind)


_CONTROL_CHARS = re.compile(r"[\x00-\x08\x0e-\x1f\x7f\u200b\ufeff]")
_LINE_BREAKS = re.compile(r"\r\n?|[\x0b\x0c\u2028\u2029]")  # PDFs separate pages with form feeds
_INNER_SPACES = re.compile(r"(?<=\S)[ \u00a0]{2,}")


def normalize_whitespace(text: str) -> str:
    """Trailing spaces stripped, runs of spaces and blank lines collapsed; paragraph breaks and tabs kept."""
    text = _CONTROL_CHARS.sub("", _LINE_BREAKS.sub("\n", text)).replace("\u00a0", " ")
    lines = [_INNER_SPACES.sub(" ", line).rstrip() for line in text.split("\n")]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def _title_from_url(url: str) -> str:
    """The file name of a URL or `file:<name>`, for documents whose metadata carry no title."""
    return unquote(posixpath.basename(urlsplit(url).path))


# --- text ------------------------------------------------------------------------------------------------


def decode_text(data: bytes, *, declared: str | None = None) -> str:
    """Bytes to text: a BOM, then the declared charset, then UTF-8, then a statistical guess."""
    for encoding in (_bom_encoding(data), declared, "utf-8"):
        if not encoding:
            continue
        try:
            return data.decode(encoding)
        except (LookupError, UnicodeDecodeError):
            continue
    best = charset_normalizer.from_bytes(data).best()
    return str(best) if best is not None else data.decode("utf-8", errors="replace")


def _bom_encoding(data: bytes) -> str | None:
    if data.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    return None


def _extract_txt(data: bytes, *, charset: str | None, url: str) -> tuple[str, str]:
    return _title_from_url(url), decode_text(data, declared=charset)


# --- HTML ------------------------------------------------------------------------------------------------

_META_CHARSET = re.compile(rb"<meta[^>]+charset\s*=\s*[\"']?([\w.:-]+)", re.IGNORECASE)
_DROPPED_TAGS = ("script", "style", "noscript", "template", "nav", "header", "footer", "aside", "form", "svg")
_HEADINGS = {f"h{level}": level for level in range(1, 7)}
_PARAGRAPH_TAGS = {"p", "div", "section", "article", "main", "ul", "ol", "dl", "table", "blockquote", "pre", "figure"}
_LINE_TAGS = {"br", "li", "tr", "dt", "dd", "caption", "figcaption", "hr"}
_CELL_TAGS = {"td", "th"}


def _extract_html(data: bytes, *, charset: str | None, url: str) -> tuple[str, str]:
    meta = _META_CHARSET.search(data[:4096])
    html = decode_text(data, declared=charset or (meta.group(1).decode("ascii") if meta else None))
    root = _parse_html(html)
    title = _html_title(root) if root is not None else ""
    text = _reader_view_text(html, url=url)
    if not text and root is not None:
        text = _dom_text(root)
    return title, text


def _parse_html(html: str) -> lxml.html.HtmlElement | None:
    import lxml.etree  # heavy parsers load on first use (module docstring)
    import lxml.html

    # Bytes with an explicit encoding: lxml refuses str input that carries an XML encoding declaration.
    parser = lxml.html.HTMLParser(encoding="utf-8")
    try:
        return lxml.html.fromstring(html.encode("utf-8", errors="replace"), parser=parser)
    except (lxml.etree.ParserError, ValueError):
        return None


def _html_title(root: lxml.html.HtmlElement) -> str:
    """og:title (usually without the site-name suffix), then <title>, then the first <h1>."""
    for xpath in ("string((//meta[@property='og:title'])[1]/@content)", "string((//title)[1])", "string((//h1)[1])"):
        title = " ".join(str(root.xpath(xpath)).split())
        if title:
            return title
    return ""


def _reader_view_text(html: str, *, url: str) -> str:
    import trafilatura  # heavy parsers load on first use (module docstring)

    try:
        text = trafilatura.extract(
            html,
            url=url or None,
            output_format="markdown",
            include_tables=True,
            include_comments=False,
            include_links=False,
            include_images=False,
            favor_recall=True,  # a sales knowledge base would rather keep a price table than lose it
        )
    except Exception:  # third-party parser on untrusted markup; the DOM walk takes over
        return ""
    return text or ""


def _dom_text(root: lxml.html.HtmlElement) -> str:
    """Fallback: main -> article -> body with page chrome and scripts removed, headings as `#` lines."""
    for element in root.xpath(" | ".join(f"//{tag}" for tag in _DROPPED_TAGS)):
        element.drop_tree()
    containers = root.xpath("//main") or root.xpath("//article") or root.xpath("//body") or [root]
    parts: list[str] = []
    _render(containers[0], parts)
    return "".join(parts)


def _render(element: lxml.html.HtmlElement, parts: list[str]) -> None:
    tag = element.tag if isinstance(element.tag, str) else ""
    if not tag:  # comments and processing instructions: their tail is the parent's business
        return
    if tag in _HEADINGS:
        parts.append(f"\n\n{'#' * _HEADINGS[tag]} {' '.join(element.text_content().split())}\n\n")
        return
    paragraph = "\n\n" if tag in _PARAGRAPH_TAGS else ""
    parts.append(paragraph)
    parts.append(_inline(element.text))
    for child in element:
        _render(child, parts)
        parts.append(_inline(child.tail))
    # Rows and list items end their line; cells end with a tab (stripped at the end of the line).
    parts.append("\t" if tag in _CELL_TAGS else "\n" if tag in _LINE_TAGS else paragraph)


def _inline(text: str | None) -> str:
    # Source line breaks inside HTML text are just spaces; block tags decide where lines break.
    return re.sub(r"\s+", " ", text) if text else ""


# --- PDF -------------------------------------------------------------------------------------------------


def _extract_pdf(data: bytes, *, charset: str | None, url: str) -> tuple[str, str]:
    reader = _open_pdf(data)
    try:
        pages = [page.extract_text() or "" for page in reader.pages]
    except Exception as exc:  # pypdf raises many kinds of errors on damaged content streams
        raise ExtractionError(f"broken PDF: {_reason(exc)}") from exc
    text = "\n\n".join(page.strip() for page in pages if page.strip())
    if not text:
        raise ExtractionError("no text layer (scanned PDF?)")
    return _pdf_title(reader) or _title_from_url(url), text


def _open_pdf(data: bytes) -> pypdf.PdfReader:
    import pypdf  # heavy parsers load on first use (module docstring)

    try:
        reader = pypdf.PdfReader(io.BytesIO(data))
        if reader.is_encrypted and reader.decrypt("") == pypdf.PasswordType.NOT_DECRYPTED:
            raise ExtractionError("encrypted PDF")
        len(reader.pages)  # resolves the page tree now, so that a broken one fails here
    except ExtractionError:
        raise
    except Exception as exc:  # any parser failure on untrusted bytes is a broken document
        raise ExtractionError(f"broken PDF: {_reason(exc)}") from exc
    return reader


def _pdf_title(reader: pypdf.PdfReader) -> str:
    try:
        return (reader.metadata.title or "") if reader.metadata else ""
    except Exception:  # a damaged info dictionary only costs the title
        return ""


def _reason(exc: Exception) -> str:
    return " ".join(f"{type(exc).__name__}: {exc}".split())[:200]


# --- Office (zip) ----------------------------------------------------------------------------------------


def _checked_zip(data: bytes, *, label: str, required: str) -> None:
    """Refuse archives that would unpack into too much memory before any parser touches them.

    zipfile never inflates a member past its declared size, so the declared sizes bound the work.
    """
    try:
        infos = zipfile.ZipFile(io.BytesIO(data)).infolist()
    except zipfile.BadZipFile as exc:
        raise ExtractionError(f"broken {label}: not a zip archive") from exc
    if len(infos) > MAX_ZIP_MEMBERS:
        raise ExtractionError(f"broken {label}: {len(infos)} archive members (limit {MAX_ZIP_MEMBERS})")
    unpacked = sum(info.file_size for info in infos)
    packed = max(sum(info.compress_size for info in infos), 1)
    if unpacked > MAX_UNPACKED_BYTES:
        raise ExtractionError(
            f"{label} too large when unpacked: {unpacked // MB} MB (limit {MAX_UNPACKED_BYTES // MB} MB)"
        )
    if unpacked > RATIO_CHECK_FLOOR_BYTES and unpacked / packed > MAX_COMPRESSION_RATIO:
        raise ExtractionError(f"{label} compression ratio {unpacked / packed:.0f}:1 is suspicious (zip bomb?)")
    if required not in {info.filename for info in infos}:
        raise ExtractionError(f"broken {label}: {required} missing")


def _extract_docx(data: bytes, *, charset: str | None, url: str) -> tuple[str, str]:
    import docx  # heavy parsers load on first use (module docstring)

    _checked_zip(data, label="DOCX", required="word/document.xml")
    try:
        document = docx.Document(io.BytesIO(data))
        blocks = [_docx_block(item) for item in document.iter_inner_content()]
        title = document.core_properties.title or ""
    except Exception as exc:  # any parser failure on untrusted bytes is a broken document
        raise ExtractionError(f"broken DOCX: {_reason(exc)}") from exc
    return title or _title_from_url(url), "\n\n".join(block for block in blocks if block)


def _docx_block(item: Paragraph | Table) -> str:
    from docx.table import Table  # heavy parsers load on first use (module docstring)

    if isinstance(item, Table):
        return "\n".join(_docx_row(row.cells) for row in item.rows).strip()
    text = item.text.strip()
    level = _heading_level(item)
    return f"{'#' * level} {text}" if text and level else text


def _heading_level(paragraph: Paragraph) -> int:
    name = paragraph.style.name if paragraph.style is not None else ""
    if (name or "").lower() == "title":
        return 1
    match = re.fullmatch(r"heading\s*([1-6])", (name or "").strip(), re.IGNORECASE)
    return int(match.group(1)) if match else 0


def _docx_row(cells: list[_Cell]) -> str:
    texts: list[str] = []
    previous = None
    for cell in cells:
        # A horizontally merged cell is returned once per grid column it spans; keep it once.
        if previous is not None and cell._tc is previous._tc:
            continue
        texts.append(" ".join(cell.text.split()))
        previous = cell
    return "\t".join(texts).rstrip()


def _extract_xlsx(data: bytes, *, charset: str | None, url: str) -> tuple[str, str]:
    import openpyxl  # heavy parsers load on first use (module docstring)

    _checked_zip(data, label="XLSX", required="xl/workbook.xml")
    try:
        with warnings.catch_warnings():
            # openpyxl warns about workbook features it ignores (data validation, extensions): noise here.
            warnings.simplefilter("ignore", UserWarning)
            workbook = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
        try:
            sheets = [_sheet_text(sheet.title, _sheet_rows(sheet)) for sheet in workbook.worksheets]
            title = workbook.properties.title or ""
        finally:
            workbook.close()
    except Exception as exc:  # any parser failure on untrusted bytes is a broken document
        raise ExtractionError(f"broken XLSX: {_reason(exc)}") from exc
    return title or _title_from_url(url), "\n\n".join(sheet for sheet in sheets if sheet)


def _sheet_rows(sheet: ReadOnlyWorksheet) -> Iterator[str]:
    # Read-only mode trusts the stored sheet dimensions, which some generators write wrong (A1:A1).
    sheet.reset_dimensions()
    for row in sheet.iter_rows(values_only=True):
        cells = [_cell_text(value) for value in row]
        if any(cells):
            yield "\t".join(cells).rstrip()


def _sheet_text(name: str, rows: Iterator[str]) -> str:
    lines = list(rows)
    return f"# {name}\n\n" + "\n".join(lines) if lines else ""


def _cell_text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, datetime.datetime) and value.time() == datetime.time(0):
        return value.date().isoformat()
    if isinstance(value, datetime.date | datetime.time):
        return value.isoformat()
    return " ".join(str(value).split())


_EXTRACTORS: dict[Kind, Callable[..., tuple[str, str]]] = {
    "html": _extract_html,
    "pdf": _extract_pdf,
    "docx": _extract_docx,
    "xlsx": _extract_xlsx,
    "txt": _extract_txt,
}
