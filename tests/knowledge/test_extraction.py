"""Text extraction from HTML, PDF, DOCX, XLSX and TXT, and the clear errors for documents that give none."""

import io
import os
import zipfile

import docx
import openpyxl
import pytest
import trafilatura
from pypdf import PdfReader, PdfWriter

from knowledge import extraction
from knowledge.extraction import ExtractedDocument, ExtractionError, detect_kind, extract_document

HTML = """<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>Window cleaning | Alpha Cleaning</title>
<meta property="og:title" content="Window cleaning in Berlin"></head>
<body>
<header><nav><a href="/">Home</a> <a href="/prices">Prices</a> <a href="/jobs">Careers menu link</a></nav></header>
<main><article>
<h1>Window cleaning</h1>
<p>We clean windows in Berlin and Potsdam. Our team arrives with all the equipment needed
and leaves no streaks behind, whatever the weather.</p>
<h2>Prices</h2>
<p>A standard window costs 12 euros. Large panoramic windows cost 25 euros each, frames and sills
included in the price.</p>
<table><tr><th>Service</th><th>Price</th></tr><tr><td>Standard window</td><td>12 EUR</td></tr></table>
<h2>Booking</h2>
<p>Book by phone or in the Telegram bot. We confirm every booking within one hour during working hours.</p>
</article></main>
<footer>Copyright 2024 Alpha Cleaning GmbH. Impressum. Datenschutz.</footer>
<script>var tracking = "should never be indexed";</script>
</body></html>"""


def make_pdf(*pages: str) -> bytes:
    """A minimal valid PDF with one Helvetica text object per page (pypdf cannot draw text itself)."""
    objects = ["<< /Type /Catalog /Pages 2 0 R >>", "", "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"]
    kids = []
    for text in pages:
        shows = " ".join(f"({line}) Tj T*" for line in text.split("\n"))
        stream = f"BT /F1 12 Tf 14 TL 72 720 Td {shows} ET"
        objects.append(f"<< /Length {len(stream)} >>\nstream\n{stream}\nendstream")
        objects.append(
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents {len(objects)} 0 R"
            " /Resources << /Font << /F1 3 0 R >> >> >>"
        )
        kids.append(f"{len(objects)} 0 R")
    objects[1] = f"<< /Type /Pages /Kids [{' '.join(kids)}] /Count {len(kids)} >>"
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n{body}\nendobj\n".encode("latin-1")
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    out += "".join(f"{offset:010d} 00000 n \n" for offset in offsets).encode()
    out += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    return bytes(out)


def written(writer: PdfWriter) -> bytes:
    buffer = io.BytesIO()
    writer.write(buffer)
    return buffer.getvalue()


def make_docx() -> bytes:
    document = docx.Document()
    document.add_heading("Cleaning services", level=1)
    document.add_paragraph("We clean flats and offices after renovation.")
    document.add_heading("Prices", level=2)
    table = document.add_table(rows=2, cols=2)
    for row, (service, price) in zip(table.rows, [("Flat", "100 EUR"), ("Office", "250 EUR")], strict=True):
        row.cells[0].text, row.cells[1].text = service, price
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


def make_xlsx() -> bytes:
    workbook = openpyxl.Workbook()
    prices = workbook.active
    prices.title = "Prices"
    prices.append(["Service", "Price"])
    prices.append(["Window", 12])
    prices.append([None, None])
    prices.append(["Balcony", 30.5])
    areas = workbook.create_sheet("Areas")
    areas.append(["Berlin", "Potsdam"])
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def zip_with(name: str, size: int, *, chunk: bytes = b"\0" * (1024 * 1024)) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        with archive.open(name, "w") as member:
            for _ in range(size // len(chunk)):
                member.write(chunk)
    return buffer.getvalue()


# --- detection -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content_type", "url", "head", "kind"),
    [
        ("text/html; charset=utf-8", "https://a.test/", b"", "html"),
        ("application/pdf", "https://a.test/page", b"", "pdf"),
        ("application/octet-stream", "https://a.test/Prices.PDF?v=2", b"", "pdf"),
        ("", "file:price list.xlsx", b"", "xlsx"),
        ("application/octet-stream", "https://a.test/download", b"%PDF-1.7\n...", "pdf"),
        ("", "https://a.test/download", make_docx(), "docx"),
        ("", "https://a.test/download", make_xlsx(), "xlsx"),
        ("", "https://a.test/download", b"\n  <!DOCTYPE html><html>", "html"),
        ("text/plain", "https://a.test/robots", b"", "txt"),
        ("image/png", "https://a.test/logo.png", b"\x89PNG\r\n\x1a\n", None),
        ("application/zip", "https://a.test/archive.zip", zip_with("data.bin", 0), None),
    ],
)
def test_detect_kind_by_content_type_then_extension_then_magic(content_type, url, head, kind):
    assert detect_kind(content_type=content_type, url=url, head=head) == kind


# --- HTML ------------------------------------------------------------------------------------------------


def test_html_keeps_main_content_and_headings_and_drops_page_chrome():
    document = extract_document(data=HTML.encode(), content_type="text/html", url="https://a.test/windows")

    assert document.kind == "html"
    assert document.title == "Window cleaning in Berlin"
    lines = document.text.split("\n")
    assert "# Window cleaning" in lines
    assert "## Prices" in lines
    assert "## Booking" in lines
    assert "A standard window costs 12 euros." in document.text
    assert "Standard window" in document.text
    for chrome in ("Careers menu link", "Copyright 2024", "tracking"):
        assert chrome not in document.text
    assert "\n\n\n" not in document.text
    assert all(line == line.rstrip() for line in lines)


def test_html_falls_back_to_a_dom_walk_when_reader_view_finds_nothing(monkeypatch):
    monkeypatch.setattr(trafilatura, "extract", lambda *args, **kwargs: None)
    html = HTML.replace('<meta property="og:title" content="Window cleaning in Berlin">', "")

    document = extract_document(data=html.encode(), content_type="text/html", url="https://a.test/windows")

    assert document.title == "Window cleaning | Alpha Cleaning"
    assert document.text.startswith("# Window cleaning\n\nWe clean windows in Berlin and Potsdam. Our team arrives")
    assert "\n## Prices\n" in document.text
    assert "Service\tPrice\nStandard window\t12 EUR" in document.text
    for chrome in ("Careers menu link", "Copyright 2024", "tracking"):
        assert chrome not in document.text


def test_html_charset_comes_from_the_content_type_or_the_meta_tag():
    html = HTML.replace("Potsdam", "Köpenick").replace('charset="utf-8"', 'charset="windows-1252"')

    from_meta = extract_document(data=html.encode("cp1252"), content_type="text/html", url="https://a.test/")
    from_header = extract_document(
        data=html.replace("windows-1252", "utf-8").encode("cp1252"),
        content_type="text/html; charset=windows-1252",
        url="https://a.test/",
    )

    assert "Berlin and Köpenick" in from_meta.text
    assert "Berlin and Köpenick" in from_header.text


# --- PDF -------------------------------------------------------------------------------------------------


def test_pdf_text_of_all_pages():
    data = make_pdf("Window cleaning price list\nStandard window 12 EUR", "Balcony glazing 30 EUR")

    document = extract_document(data=data, content_type="application/pdf", url="https://a.test/files/prices.pdf")

    assert document == ExtractedDocument(
        title="prices.pdf",
        text="Window cleaning price list\nStandard window 12 EUR\n\nBalcony glazing 30 EUR",
        kind="pdf",
    )


def test_pdf_with_only_an_owner_password_opens():
    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(make_pdf("Protected but readable"))))
    writer.encrypt(user_password="", owner_password="owner-secret")

    document = extract_document(data=written(writer), content_type="application/pdf", url="https://a.test/a.pdf")

    assert document.text == "Protected but readable"


def test_encrypted_pdf_is_refused():
    writer = PdfWriter()
    writer.add_blank_page(width=200, height=200)
    writer.encrypt(user_password="secret")

    with pytest.raises(ExtractionError, match=r"^encrypted PDF$"):
        extract_document(data=written(writer), content_type="application/pdf", url="https://a.test/a.pdf")


def test_pdf_without_a_text_layer_is_refused():
    writer = PdfWriter()
    writer.add_blank_page(width=200, height=200)

    with pytest.raises(ExtractionError, match=r"no text layer \(scanned PDF\?\)"):
        extract_document(data=written(writer), content_type="application/pdf", url="https://a.test/scan.pdf")


@pytest.mark.parametrize("data", [b"%PDF-1.4\n1 0 obj << /Type /Catal", b"this is not a PDF at all"])
def test_broken_pdf_is_a_clear_error(data):
    with pytest.raises(ExtractionError, match=r"^broken PDF: "):
        extract_document(data=data, content_type="application/pdf", url="https://a.test/a.pdf")


# --- DOCX and XLSX ---------------------------------------------------------------------------------------


def test_docx_paragraphs_headings_and_tables():
    document = extract_document(data=make_docx(), content_type="", url="file:services.docx")

    assert document == ExtractedDocument(
        title="services.docx",
        text=(
            "# Cleaning services\n\nWe clean flats and offices after renovation.\n\n## Prices\n\n"
            "Flat\t100 EUR\nOffice\t250 EUR"
        ),
        kind="docx",
    )


def test_xlsx_every_sheet_with_tab_separated_rows():
    document = extract_document(
        data=make_xlsx(),
        content_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        url="https://a.test/prices.xlsx",
    )

    assert document.kind == "xlsx"
    assert document.text == "# Prices\n\nService\tPrice\nWindow\t12\nBalcony\t30.5\n\n# Areas\n\nBerlin\tPotsdam"


@pytest.mark.parametrize(("url", "label"), [("file:a.docx", "DOCX"), ("file:a.xlsx", "XLSX")])
def test_broken_office_documents_are_clear_errors(url, label):
    with pytest.raises(ExtractionError, match=f"^broken {label}: not a zip archive$"):
        extract_document(data=b"PK\x03\x04 truncated garbage", content_type="", url=url)

    with pytest.raises(ExtractionError, match=f"^broken {label}: "):
        extract_document(data=zip_with("readme.txt", 0), content_type="", url=url)


def test_docx_with_a_valid_zip_but_broken_xml_is_a_clear_error():
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("[Content_Types].xml", "<Types")
        archive.writestr("word/document.xml", "<w:document")

    with pytest.raises(ExtractionError, match=r"^broken DOCX: "):
        extract_document(data=buffer.getvalue(), content_type="", url="file:a.docx")


def test_zip_bomb_is_refused_before_parsing():
    bomb = zip_with("word/document.xml", 120 * 1024 * 1024)
    assert len(bomb) < 1024 * 1024

    with pytest.raises(ExtractionError, match=r"^DOCX too large when unpacked: 120 MB \(limit 100 MB\)$"):
        extract_document(data=bomb, content_type="", url="https://a.test/offer.docx")


def test_highly_compressible_archive_is_refused_by_its_ratio():
    bomb = zip_with("xl/workbook.xml", 20 * 1024 * 1024)

    with pytest.raises(ExtractionError, match=r"^XLSX compression ratio \d+:1 is suspicious \(zip bomb\?\)$"):
        extract_document(data=bomb, content_type="", url="https://a.test/prices.xlsx")


def test_unpacked_size_limit_holds_for_incompressible_members(monkeypatch):
    monkeypatch.setattr(extraction, "MAX_UNPACKED_BYTES", 1024 * 1024)
    archive = zip_with("word/document.xml", 2 * 1024 * 1024, chunk=os.urandom(64 * 1024))

    with pytest.raises(ExtractionError, match="too large when unpacked"):
        extract_document(data=archive, content_type="", url="file:a.docx")


# --- TXT, unsupported, empty -----------------------------------------------------------------------------


def test_txt_is_verbatim_in_the_declared_or_detected_charset():
    russian = "Мы моем окна в Москве и области.\r\n\r\n\r\nЦены указаны за одно окно, выезд мастера бесплатный.  \n"
    expected = "Мы моем окна в Москве и области.\n\nЦены указаны за одно окно, выезд мастера бесплатный."

    declared = extract_document(
        data=russian.encode("cp1251"), content_type="text/plain; charset=windows-1251", url="https://a.test/a.txt"
    )
    utf8 = extract_document(data=russian.encode(), content_type="text/plain", url="https://a.test/a.txt")
    guessed = extract_document(data=russian.encode("cp1251"), content_type="", url="file:notes.txt")

    assert (declared.text, declared.kind) == (expected, "txt")
    assert utf8.text == expected
    assert (guessed.text, guessed.title) == (expected, "notes.txt")


def test_unsupported_content_type_is_refused():
    with pytest.raises(ExtractionError, match=r"^unsupported content type image/png$"):
        extract_document(data=b"\x89PNG\r\n\x1a\n....", content_type="image/png", url="https://a.test/logo.png")


@pytest.mark.parametrize(
    ("data", "content_type"),
    [
        (b"", "text/html"),
        (b"  \n\t ", "text/plain"),
        (
            b"<html><head><title>Nothing</title><style>p {}</style></head><body><script>track()</script></body></html>",
            "text/html",
        ),
    ],
)
def test_empty_document_is_refused(data, content_type):
    with pytest.raises(ExtractionError, match=r"^empty document$"):
        extract_document(data=data, content_type=content_type, url="https://a.test/")
