"""Readable text from uploaded files and web pages, as a :class:`Document` of sections.

HTML goes through ``trafilatura`` (a maintained main-content extractor) after navigation,
footers, scripts and cookie banners are cut out of the tree; PDF through ``pypdf`` (headings
recognised by font size); DOCX through ``python-docx`` (headings from paragraph styles); TXT
and Markdown directly. All text is NFC-normalised.
"""

from __future__ import annotations

import io
import logging
import re
import unicodedata
import zipfile
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import unquote, urlsplit

import docx
import lxml.etree
import lxml.html
import trafilatura
from docx.table import Table
from docx.text.paragraph import Paragraph
from pypdf import PdfReader
from trafilatura.settings import use_config

from demandly.knowledge.documents import Document, ExtractionError, Section

HTML = "text/html"
PDF = "application/pdf"
DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
TEXT = "text/plain"
MARKDOWN = "text/markdown"
QA = "text/x-qa"

_EXTENSIONS = {
    ".pdf": PDF,
    ".docx": DOCX,
    ".html": HTML,
    ".htm": HTML,
    ".xhtml": HTML,
    ".txt": TEXT,
    ".text": TEXT,
    ".md": MARKDOWN,
    ".markdown": MARKDOWN,
}
_TEXT_TYPES = {
    "text/html": HTML,
    "application/xhtml+xml": HTML,
    "text/plain": TEXT,
    "text/markdown": MARKDOWN,
    "text/x-markdown": MARKDOWN,
}
_UNSUPPORTED = "Unsupported file type: upload PDF, DOCX, HTML, TXT or Markdown."
# pypdf's warnings and errors about damaged files quote their bytes (maybe personal data);
# the user learns of a damaged file from the ExtractionError instead.
logging.getLogger("pypdf").setLevel(logging.CRITICAL)

# ---------------------------------------------------------------------------------------------
# Text clean-up shared by every format


_INVISIBLE = dict.fromkeys(map(ord, "\u00ad\u200b\u200c\u200d\u2060\ufeff"))
_SPACES = re.compile(r"[ \t\f\v\u00a0\u2000-\u200a\u202f\u205f\u3000]+")
_BLANK_LINES = re.compile(r"\n{3,}")


def clean_text(text: str) -> str:
    """NFC, no soft hyphens or zero-width characters, single spaces, at most one blank line."""
    text = unicodedata.normalize("NFC", text).translate(_INVISIBLE)
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    lines = (_SPACES.sub(" ", line).strip() for line in text.split("\n"))
    return _BLANK_LINES.sub("\n\n", "\n".join(lines)).strip()


def _clean_inline(text: str) -> str:
    return " ".join(clean_text(text).split())


def _sections(pairs: Iterable[tuple[str | None, list[str]]]) -> tuple[Section, ...]:
    """Sections from (heading, paragraphs), dropping empty ones."""
    sections = []
    for heading, paragraphs in pairs:
        body = clean_text("\n\n".join(p for p in paragraphs if p.strip()))
        title = _clean_inline(heading) if heading else None
        if body or title:
            sections.append(Section(heading=title or None, text=body))
    return tuple(sections)


def _document(
    title: str, sections: tuple[Section, ...], *, url: str | None, content_type: str
) -> Document:
    if not any(s.text for s in sections):
        raise ExtractionError("No readable text was found in this content.")
    return Document(
        title=_clean_inline(title) or "Untitled",
        sections=sections,
        url=url,
        content_type=content_type,
    )


# ---------------------------------------------------------------------------------------------
# Plain text, Markdown, Q&A


def from_text(text: str, title: str) -> Document:
    """One untitled section holding the whole text."""
    return _document(title, _sections([(None, [text])]), url=None, content_type=TEXT)


_ATX = re.compile(r"^ {0,3}(#{1,6})[ \t]+(.*?)(?:[ \t]+#+)?[ \t]*$")
_SETEXT = re.compile(r"^ {0,3}(=+|-+)[ \t]*$")
_FENCE = re.compile(r"^ {0,3}(```|~~~)")
_MD_LINK = re.compile(r"!?\[([^\]]*)\]\([^)]*\)")
_MD_EMPHASIS = re.compile(r"(\*\*|__|\*|_|`)(?=\S)(.+?)(?<=\S)\1")


def _strip_markdown(line: str) -> str:
    """Inline markup off: links keep their text, emphasis and code marks go."""
    return _MD_EMPHASIS.sub(r"\2", _MD_LINK.sub(r"\1", line))


def _markdown_blocks(md: str) -> Iterator[tuple[str | None, list[str]]]:
    heading: str | None = None
    lines: list[str] = []
    in_fence = False
    for raw in clean_text(md).split("\n"):
        if _FENCE.match(raw):
            in_fence = not in_fence
            continue
        atx = None if in_fence else _ATX.match(raw)
        setext = None if in_fence else _SETEXT.match(raw)
        if atx:
            yield heading, ["\n".join(lines)]
            heading, lines = _strip_markdown(atx.group(2)), []
        elif setext and lines and lines[-1].strip():
            # "Title\n=====" — the previous line was the heading.
            text_before = lines[:-1]
            yield heading, ["\n".join(text_before)]
            heading, lines = _strip_markdown(lines[-1]), []
        else:
            lines.append(raw if in_fence else _strip_markdown(raw))
    yield heading, ["\n".join(lines)]


def from_markdown(md: str, title: str) -> Document:
    """Sections split at ATX (``#``) and setext headings; a leading H1 becomes the title."""
    blocks = list(_markdown_blocks(md))
    sections = _sections(blocks)
    opening = _ATX.match(clean_text(md).split("\n", 1)[0])
    if opening and opening.group(1) == "#" and sections and sections[0].heading:
        title = sections[0].heading
    return _document(title, sections, url=None, content_type=MARKDOWN)


def from_qa(pairs: list[tuple[str, str]], title: str) -> Document:
    """One section per question/answer pair; the question is the heading."""
    sections = tuple(
        Section(heading=_clean_inline(q), text=clean_text(a))
        for q, a in pairs
        if q.strip() and a.strip()
    )
    return _document(title, sections, url=None, content_type=QA)


# ---------------------------------------------------------------------------------------------
# HTML

_BOILERPLATE_TAGS = (
    "script",
    "style",
    "noscript",
    "template",
    "iframe",
    "svg",
    "canvas",
    "nav",
    "footer",
    "aside",
    "dialog",
    "form",
    "button",
)
_BOILERPLATE_ROLES = {"navigation", "contentinfo", "banner", "dialog", "alertdialog", "search"}
_BANNER_MARK = re.compile(r"cookie|consent|gdpr|cmp[-_]|onetrust|usercentrics|borlabs", re.I)
_TRAFILATURA_CONFIG = use_config()
# Short pages (a contact page) are real content too; and no signal-based timeout in threads.
_TRAFILATURA_CONFIG.set("DEFAULT", "MIN_EXTRACTED_SIZE", "1")
_TRAFILATURA_CONFIG.set("DEFAULT", "MIN_OUTPUT_SIZE", "1")
_TRAFILATURA_CONFIG.set("DEFAULT", "EXTRACTION_TIMEOUT", "0")


def parse_html(html: str | bytes) -> Any:
    """An lxml tree of the page; bytes are decoded from their meta charset or as UTF-8."""
    if isinstance(html, bytes):
        html = decode_text(html, html=True)
    html = html.strip()
    if not html:
        raise ExtractionError("The page is empty.")
    try:
        return lxml.html.document_fromstring(html)
    except (lxml.etree.ParserError, ValueError) as exc:
        raise ExtractionError("The HTML could not be read.") from exc


def _remove_boilerplate(tree: Any) -> None:
    doomed = []
    for element in tree.iter():
        if not isinstance(element.tag, str):
            doomed.append(element)  # comments, processing instructions
            continue
        tag = element.tag.lower()
        role = (element.get("role") or "").lower()
        marks = " ".join(filter(None, (element.get("id"), element.get("class"))))
        if (
            tag in _BOILERPLATE_TAGS
            or role in _BOILERPLATE_ROLES
            or (tag == "header" and _is_page_header(element))
            or (marks and _BANNER_MARK.search(marks))
            or element.get("aria-hidden") == "true"
            or element.get("hidden") is not None
        ):
            doomed.append(element)
    for element in doomed:
        if element.getparent() is not None:
            element.drop_tree()


def _is_page_header(element: Any) -> bool:
    """A site-wide ``<header>`` (direct child of body), not an article's own header."""
    parent = element.getparent()
    return parent is not None and parent.tag == "body"


def _page_title(tree: Any) -> str | None:
    metadata = trafilatura.extract_metadata(tree)
    if metadata is not None and metadata.title:
        return str(metadata.title)
    titles = tree.xpath("//title/text()")
    return titles[0] if titles else None


_XML_BREAKS = {"list", "item", "lb", "p", "head", "row", "cell"}


def _xml_text(element: Any) -> str:
    """The text of a trafilatura XML element; nested blocks and line breaks become spaces,
    inline markup (``<hi>``) joins without one."""
    parts = [element.text or ""]
    for child in element:
        if child.tag in _XML_BREAKS:
            parts.append(" ")
        parts.append(_xml_text(child))
        parts.append(child.tail or "")
    return _clean_inline("".join(parts))


def _xml_blocks(xml: str) -> list[tuple[str | None, list[str]]]:
    root = lxml.etree.fromstring(xml.encode("utf-8"))
    main = root.find("main")
    blocks: list[tuple[str | None, list[str]]] = [(None, [])]
    for element in main if main is not None else []:
        if element.tag == "head":
            blocks.append((_xml_text(element), []))
        elif element.tag == "list":
            items = element.findall("item")
            text = "\n".join("- " + _xml_text(i) for i in items)
            blocks[-1][1].append(text)
        elif element.tag == "table":
            rows = (
                " | ".join(_xml_text(c) for c in row.findall("cell"))
                for row in element.findall("row")
            )
            blocks[-1][1].append("\n".join(r for r in rows if r.strip(" |")))
        else:
            blocks[-1][1].append(_xml_text(element))
    return blocks


def extract_html(html: str | bytes, url: str | None = None) -> Document:
    """The readable part of a web page: title, and sections along its headings."""
    tree = parse_html(html)
    title = _page_title(tree)
    _remove_boilerplate(tree)
    xml = trafilatura.extract(
        tree,
        url=url,
        output_format="xml",
        include_tables=True,
        include_comments=False,
        include_images=False,
        include_links=False,
        favor_recall=True,
        deduplicate=False,
        config=_TRAFILATURA_CONFIG,
    )
    if not xml:
        raise ExtractionError("No readable text was found on this page.")
    sections = _sections(_xml_blocks(xml))
    fallback = _url_title(url) if url else None
    return _document(title or fallback or "Untitled", sections, url=url, content_type=HTML)


def _url_title(url: str) -> str:
    parts = urlsplit(url)
    name = unquote(PurePosixPath(parts.path).name)
    return name or parts.hostname or url


# ---------------------------------------------------------------------------------------------
# PDF


@dataclass
class _PdfLine:
    text: str
    size: float


def _pdf_lines(page: Any) -> list[_PdfLine]:
    """The page's text lines with the font size each is set in (largest wins)."""
    lines: list[_PdfLine] = []
    current: list[str] = []
    size = 0.0

    def visit(text: str, cm: Any, tm: Any, font: Any, font_size: float) -> None:
        nonlocal size
        scale = (abs(float(tm[3])) or 1.0) * (abs(float(cm[3])) or 1.0)
        parts = text.split("\n")
        for index, part in enumerate(parts):
            if index:
                lines.append(_PdfLine("".join(current), size))
                current.clear()
                size = 0.0
            if part.strip():
                current.append(part)
                size = max(size, float(font_size or 0) * scale)

    page.extract_text(visitor_text=visit)
    if current:
        lines.append(_PdfLine("".join(current), size))
    return [line for line in lines if line.text.strip()]


_SUSPENDED_HYPHEN_NEXT = ("und ", "oder ", "bzw", "sowie ", "bis ", "and ", "or ")
_HYPHEN_BREAK = re.compile(r"(\w)-\n(?=\w)")


def _join_hyphenation(text: str) -> str:
    """Rejoin words hyphenated at line ends ("Zahn-\\nreinigung"), keep "Haus- und Hof"."""

    def join(match: re.Match[str]) -> str:
        rest = text[match.end() : match.end() + 6].lower()
        if rest.startswith(_SUSPENDED_HYPHEN_NEXT) or text[match.end()].isupper():
            return match.group(0)
        return match.group(1)

    return _HYPHEN_BREAK.sub(join, text)


def extract_pdf(data: bytes, filename: str = "document.pdf") -> Document:
    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted and not reader.decrypt(""):
            raise ExtractionError("This PDF is password-protected; upload an unprotected copy.")
        page_lines = [_pdf_lines(page) for page in reader.pages]
        meta_title = reader.metadata.title if reader.metadata else None
    except ExtractionError:
        raise
    except Exception as exc:  # a parser fed untrusted bytes fails in many ways; all mean this
        raise ExtractionError("The PDF could not be read; it may be damaged.") from exc
    all_lines = [line for lines in page_lines for line in lines]
    if not any(line.text.strip() for line in all_lines):
        raise ExtractionError(
            "No text was found in this PDF (is it a scan?); upload a PDF with selectable text."
        )
    body_size = _body_font_size(all_lines)
    blocks: list[tuple[str | None, list[str]]] = [(None, [])]
    for line in all_lines:
        text = line.text.strip()
        if body_size and line.size >= body_size * 1.15 and len(text) <= 120:
            heading, lines = blocks[-1]
            if heading and not lines:  # a heading set over two lines
                blocks[-1] = (f"{heading} {text}", lines)
            else:
                blocks.append((text, []))
        else:
            blocks[-1][1].append(text)
    joined = [(h, [_join_hyphenation(_pdf_paragraphs(lines))]) for h, lines in blocks]
    title = meta_title or next((h for h, _ in blocks if h), None) or _stem(filename)
    return _document(str(title), _sections(joined), url=None, content_type=PDF)


def _body_font_size(lines: list[_PdfLine]) -> float:
    """The size most characters are set in."""
    counts: Counter[float] = Counter()
    for line in lines:
        counts[round(line.size, 1)] += len(line.text)
    return counts.most_common(1)[0][0] if counts else 0.0


def _pdf_paragraphs(lines: list[str]) -> str:
    """PDF lines to paragraphs: a line ending a sentence and shorter than most ends one."""
    if not lines:
        return ""
    widths = sorted(len(line) for line in lines)
    typical = widths[len(widths) * 3 // 4]
    out: list[str] = []
    for line in lines:
        out.append(line)
        short = len(line) < typical * 0.7
        out.append("\n\n" if short and line.endswith((".", "!", "?", ":")) else "\n")
    return "".join(out)


# ---------------------------------------------------------------------------------------------
# DOCX

_HEADING_STYLE = re.compile(r"^(heading|überschrift|titre|título|titolo)\s*(\d)?$", re.I)


def _docx_heading_level(paragraph: Any) -> int | None:
    style = paragraph.style
    name = (style.name or "") if style is not None else ""
    if name.lower() == "title":
        return 0
    match = _HEADING_STYLE.match(name.strip())
    if match:
        return int(match.group(2) or 1)
    ppr = paragraph._p.pPr
    outline = ppr.find(_w("outlineLvl")) if ppr is not None else None
    if outline is not None:
        return int(outline.get(_w("val"), "0")) + 1
    return None


def _w(tag: str) -> str:
    return "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}" + tag


def _docx_items(document: Any) -> Iterator[tuple[int | None, str]]:
    """Paragraphs (with heading level) and tables (as rows of cells) in document order."""
    for child in document.element.body.iterchildren():
        if child.tag == _w("p"):
            paragraph = Paragraph(child, document)
            yield _docx_heading_level(paragraph), paragraph.text
        elif child.tag == _w("tbl"):
            table = Table(child, document)
            rows = []
            for row in table.rows:
                cells: list[str] = []
                for cell in row.cells:
                    text = _clean_inline(cell.text)
                    if not cells or cells[-1] != text:  # merged cells repeat
                        cells.append(text)
                rows.append(" | ".join(cells))
            yield None, "\n".join(r for r in rows if r.strip(" |"))


def extract_docx(data: bytes, filename: str = "document.docx") -> Document:
    try:
        document = docx.Document(io.BytesIO(data))
        items = list(_docx_items(document))
        core_title = document.core_properties.title
    except Exception as exc:  # a parser fed untrusted bytes fails in many ways; all mean this
        raise ExtractionError("The DOCX file could not be read; it may be damaged.") from exc
    title = core_title or None
    blocks: list[tuple[str | None, list[str]]] = [(None, [])]
    for level, text in items:
        if level == 0 and text.strip():
            title = title or text
        elif level is not None and text.strip():
            blocks.append((text, []))
        else:
            blocks[-1][1].append(text)
    first_heading = next((h for h, _ in blocks if h), None)
    return _document(
        title or first_heading or _stem(filename), _sections(blocks), url=None, content_type=DOCX
    )


# ---------------------------------------------------------------------------------------------
# Files: sniffing and dispatch


def _stem(filename: str) -> str:
    return PurePosixPath(filename.replace("\\", "/")).stem or filename


_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?([A-Za-z0-9_.:-]+)""", re.I)


def decode_text(data: bytes, *, html: bool = False) -> str:
    """Bytes to text: BOM, then (for HTML) the meta charset, then UTF-8, then Windows-1252."""
    if data.startswith(b"\xef\xbb\xbf"):
        return data[3:].decode("utf-8", errors="replace")
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return data.decode("utf-16", errors="replace")
    if html:
        declared = _META_CHARSET.search(data[:4096])
        if declared:
            try:
                return data.decode(declared.group(1).decode("ascii"), errors="replace")
            except LookupError:
                pass
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("cp1252", errors="replace")


def _looks_like_html(text: str) -> bool:
    head = text[:2048].lstrip().lower()
    return head.startswith(("<!doctype html", "<html")) or "<body" in head or "<head" in head


def _sniff_binary(data: bytes) -> str | None:
    """The type of a binary file by its magic bytes, refusing binaries we do not read."""
    if b"%PDF-" in data[:1024]:
        return PDF
    if data.startswith(b"PK\x03\x04"):
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as archive:
                if "word/document.xml" in archive.namelist():
                    return DOCX
        # Reading the archive's directory fails in many ways on untrusted bytes (a bad
        # header, an entry that asks for a newer zip version, a truncated file): all mean this.
        except Exception as exc:
            raise ExtractionError("The file is a damaged archive.") from exc
        raise ExtractionError(_UNSUPPORTED)
    if data.startswith(b"\xd0\xcf\x11\xe0"):
        raise ExtractionError("Old Word/Office files are not supported; save as DOCX or PDF.")
    if b"\x00" in data[:8192] and not data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise ExtractionError(_UNSUPPORTED)
    return None


def _base_type(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


def extract_file(filename: str, data: bytes, content_type: str | None = None) -> Document:
    """A Document from an uploaded file, by its content first and its name second."""
    if not data.strip():
        raise ExtractionError("The file is empty.")
    kind = _sniff_binary(data)
    extension = PurePosixPath(filename.lower()).suffix
    declared = _EXTENSIONS.get(extension) or _TEXT_TYPES.get(_base_type(content_type))
    if kind is None and declared in (PDF, DOCX):
        raise ExtractionError(f"The file is not a valid {'PDF' if declared == PDF else 'DOCX'}.")
    if kind == PDF:
        return extract_pdf(data, filename)
    if kind == DOCX:
        return extract_docx(data, filename)
    text = decode_text(data, html=declared == HTML)
    if declared is None and extension and extension not in _EXTENSIONS:
        if not _looks_like_html(text):
            raise ExtractionError(_UNSUPPORTED)
        declared = HTML
    if declared == HTML or (declared is None and _looks_like_html(text)):
        document = extract_html(text)
        if document.title == "Untitled":
            document = Document(_stem(filename), document.sections, None, HTML)
        return document
    if declared == MARKDOWN:
        return from_markdown(text, _stem(filename))
    return from_text(text, _stem(filename))
