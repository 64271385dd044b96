"""Extraction: every supported file type gives its readable text, titles and headings."""

from __future__ import annotations

import io
import unicodedata
import zipfile
from collections.abc import Callable

import pytest
from fpdf import FPDF
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from demandly.knowledge.documents import Document, ExtractionError
from demandly.knowledge.extract import (
    extract_file,
    extract_html,
    from_markdown,
    from_qa,
    from_text,
)
from tests.knowledge.site import LEISTUNGEN, SERVICES, make_docx, make_pdf


def full_text(document: Document) -> str:
    return "\n".join(f"{s.heading or ''}\n{s.text}" for s in document.sections)


def headings(document: Document) -> list[str | None]:
    return [s.heading for s in document.sections]


def test_pdf_keeps_title_heading_text_and_price_table() -> None:
    document = extract_file("preisliste.pdf", make_pdf())

    assert document.content_type == "application/pdf"
    assert document.title == "Preisliste Praxis Sonnenschein"
    assert headings(document) == ["Preisliste 2026", "Prophylaxe und Ästhetik"]
    assert "inklusive Mehrwertsteuer" in document.sections[0].text
    assert "Größere Behandlungen" in document.sections[0].text
    table = document.sections[1].text
    assert "Professionelle Zahnreinigung 89,00 EUR" in table
    assert "Bleaching 249,00 EUR" in table


def test_pdf_is_recognised_by_content_whatever_its_name() -> None:
    document = extract_file("upload", make_pdf(), "application/octet-stream")
    assert document.content_type == "application/pdf"


def test_docx_headings_come_from_paragraph_styles() -> None:
    document = extract_file("handbuch.docx", make_docx())

    assert document.title == "Praxishandbuch"
    assert headings(document) == [None, "Terminvergabe", "Notfälle", "Preise"]
    assert document.sections[0].text == "Dieses Handbuch beschreibt die Abläufe in unserer Praxis."
    assert document.sections[2].text.startswith("Schmerzpatienten erhalten")
    assert "Professionelle Zahnreinigung | 89,00 EUR" in document.sections[3].text


def test_html_keeps_headings_and_drops_navigation_footer_scripts_and_cookie_banner() -> None:
    document = extract_file("leistungen.html", LEISTUNGEN.encode("utf-8"))
    text = full_text(document)

    assert document.title == "Unsere Leistungen"
    assert headings(document) == [
        "Unsere Leistungen",
        "Professionelle Zahnreinigung",
        "Öffnungszeiten",
        "Preise",
    ]
    assert "dauert etwa 45 Minuten und kostet 89 Euro" in text
    assert "Zahnreinigung | 89 €" in text
    for boilerplate in ("Cookies", "akzeptieren", "Impressum", "Start", "tracking-code", "{"):
        assert boilerplate not in text


def test_english_page_and_its_url() -> None:
    document = extract_html(SERVICES, url="https://praxis.example/en/services")

    assert document.url == "https://praxis.example/en/services"
    assert document.title == "Our services"
    assert "Teeth cleaning" in headings(document)
    assert "costs 89 euros" in full_text(document)


def test_html_in_a_legacy_encoding_is_decoded_from_its_meta_charset() -> None:
    html = (
        '<html><head><meta charset="windows-1252"><title>Öffnungszeiten</title></head>'
        "<body><h1>Öffnungszeiten</h1><p>Größere Behandlungen nur nach Terminabsprache, "
        "außer in Notfällen. Wir freuen uns über Ihren Besuch.</p></body></html>"
    ).encode("cp1252")
    text = full_text(extract_file("zeiten.htm", html))
    assert "Größere Behandlungen" in text
    assert "außer in Notfällen" in text


def test_text_file_utf8_legacy_and_nfc() -> None:
    decomposed = "Zahnarzt Mu\u0308ller, Stra\u00dfe 5.\r\n\r\nTermine nach Vereinbarung."
    document = extract_file("notiz.txt", decomposed.encode("utf-8"))
    assert document.title == "notiz"
    assert document.sections[0].text == "Zahnarzt Müller, Straße 5.\n\nTermine nach Vereinbarung."
    assert unicodedata.is_normalized("NFC", document.sections[0].text)

    legacy = extract_file("alt.txt", "Grüße aus der Praxis".encode("cp1252"))
    assert legacy.sections[0].text == "Grüße aus der Praxis"


def test_markdown_splits_on_headings_and_keeps_code_blocks_whole() -> None:
    md = (
        "# Praxis-FAQ\n\nAllgemeine Hinweise mit einem [Link](https://praxis.example).\n\n"
        "## Parken\n\nParkplätze gibt es **hinter** dem Haus.\n\n"
        "Anfahrt\n-------\n\nMit der U-Bahn bis Marienplatz.\n\n"
        "```\n# kein Titel\n```\n"
    )
    document = extract_file("faq.md", md.encode("utf-8"))

    assert document.content_type == "text/markdown"
    assert document.title == "Praxis-FAQ"
    assert headings(document) == ["Praxis-FAQ", "Parken", "Anfahrt"]
    assert document.sections[0].text == "Allgemeine Hinweise mit einem Link."
    assert document.sections[1].text == "Parkplätze gibt es hinter dem Haus."
    assert "# kein Titel" in document.sections[2].text


def test_from_text_markdown_and_qa_builders() -> None:
    assert from_text("Ein Satz.", "Notiz").sections[0].text == "Ein Satz."
    assert headings(from_markdown("Vorwort\n\n## Teil 1\nText", "Doku")) == [None, "Teil 1"]

    qa = from_qa(
        [("Was kostet die Zahnreinigung?", "89 Euro."), ("Parken?", "Hinter dem Haus."), ("", "")],
        "FAQ",
    )
    assert qa.title == "FAQ"
    assert [(s.heading, s.text) for s in qa.sections] == [
        ("Was kostet die Zahnreinigung?", "89 Euro."),
        ("Parken?", "Hinter dem Haus."),
    ]


def _zip(names: list[str]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for name in names:
            archive.writestr(name, "<x/>")
    return out.getvalue()


def _zip_of_version(names: list[str], version: int) -> bytes:
    """An archive whose entries say they need ``version`` to be unpacked (the central
    directory's "version needed to extract"), as a damaged or exotic file may."""
    data = bytearray(_zip(names))
    at = data.find(b"PK\x01\x02")
    while at != -1:
        data[at + 6 : at + 8] = version.to_bytes(2, "little")
        at = data.find(b"PK\x01\x02", at + 4)
    return bytes(data)


@pytest.mark.parametrize(
    ("filename", "data", "message"),
    [
        ("leer.txt", b"   \n", "empty"),
        ("bild.png", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "Unsupported"),
        ("alt.doc", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 64, "DOCX or PDF"),
        ("tabelle.xlsx", _zip(["xl/workbook.xml"]), "Unsupported"),
        ("kaputt.docx", _zip(["word/document.xml"]), "could not be read"),
        ("neu.docx", _zip_of_version(["word/document.xml"], 64), "damaged archive"),
        ("falsch.pdf", b"Das ist kein PDF.", "not a valid PDF"),
        ("kaputt.pdf", b"%PDF-1.7\n1 0 obj << /Type /Catalog >>\n%%EOF", "PDF"),
        ("daten.csv", b"name;preis\nReinigung;89", "Unsupported"),
        ("leer.html", b"<html><body><nav>Start</nav></body></html>", "No readable text"),
    ],
)
def test_unsupported_or_broken_files_are_refused_with_a_clear_message(
    filename: str, data: bytes, message: str
) -> None:
    with pytest.raises(ExtractionError, match=message):
        extract_file(filename, data)


def test_html_is_sniffed_without_an_extension() -> None:
    html = b"<!doctype html><html><head><title>Team</title></head><body><h1>Team</h1>"
    html += b"<p>Unser Team besteht aus drei Zahn\xc3\xa4rztinnen und f\xc3\xbcnf Helferinnen.</p>"
    html += b"</body></html>"
    document = extract_file("team", html)
    assert document.content_type == "text/html"
    assert "drei Zahnärztinnen" in full_text(document)


def _pdf(draw: Callable[[FPDF], None]) -> bytes:
    pdf = FPDF()
    pdf.add_page()
    pdf.set_font("Helvetica", size=11)
    draw(pdf)
    return bytes(pdf.output())


def test_pdf_words_hyphenated_at_line_ends_are_rejoined() -> None:
    data = _pdf(
        lambda pdf: pdf.multi_cell(
            0, 6, text="Die professionelle Zahn-\nreinigung ist wichtig. Haus-\nund Hofpflege."
        )
    )
    text = extract_file("zeilen.pdf", data).sections[0].text
    assert "Die professionelle Zahnreinigung ist wichtig." in text
    assert "Haus-\nund Hofpflege." in text


def test_scanned_and_protected_pdfs_are_refused_with_a_reason() -> None:
    scan = _pdf(lambda pdf: pdf.rect(10, 10, 50, 50, style="F"))
    with pytest.raises(ExtractionError, match="scan"):
        extract_file("scan.pdf", scan)

    def protect(pdf: FPDF) -> None:
        pdf.set_encryption(owner_password="besitzer", user_password="geheim")
        pdf.cell(text="Vertraulich")

    with pytest.raises(ExtractionError, match="password-protected"):
        extract_file("geschuetzt.pdf", _pdf(protect))


def _damaged(original: bytes) -> st.SearchStrategy[bytes]:
    return st.tuples(st.integers(0, len(original) - 1), st.binary(min_size=1, max_size=40)).map(
        lambda cut: original[: cut[0]] + cut[1] + original[cut[0] + len(cut[1]) :]
    )


@settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    name=st.sampled_from(["a.pdf", "a.docx", "a.html", "a.txt", "a.md", "a", "a.csv"]),
    data=st.one_of(
        st.binary(max_size=2000),
        st.text(max_size=500).map(str.encode),
        _damaged(make_pdf()),
        _damaged(make_docx()),
    ),
)
def test_any_bytes_give_a_document_or_an_extraction_error(name: str, data: bytes) -> None:
    try:
        document = extract_file(name, data)
    except ExtractionError as exc:
        assert str(exc)
    else:
        assert any(s.text for s in document.sections)
