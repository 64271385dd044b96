"""Chunking: size limits, overlap, headings, positions, and the near-duplicate key."""

from __future__ import annotations

import itertools
import re

from hypothesis import given, settings
from hypothesis import strategies as st

from demandly.knowledge.chunking import chunk_document, near_duplicate_key, split_sentences
from demandly.knowledge.documents import Document, Section
from demandly.knowledge.extract import from_qa

SENTENCES = [
    "Die professionelle Zahnreinigung dauert etwa 45 Minuten und kostet 89 Euro.",
    "Dabei entfernen wir Beläge und Zahnstein gründlich, auch zwischen den Zähnen.",
    "Anschließend polieren wir die Zahnoberflächen und tragen ein Fluoridgel auf.",
    "Die gesetzlichen Krankenkassen übernehmen die Kosten meist nicht vollständig.",
    "Viele private Zusatzversicherungen erstatten jedoch einen großen Teil des Betrags.",
    "Wir empfehlen die Reinigung zweimal im Jahr, bei Parodontitis auch häufiger.",
]


def long_document() -> Document:
    paragraph = " ".join(SENTENCES)
    return Document(
        title="Leistungen",
        url="https://praxis.example/leistungen",
        sections=(
            Section(heading=None, text="Willkommen in der Praxis Sonnenschein."),
            Section(heading="Zahnreinigung", text="\n\n".join([paragraph] * 4)),
            Section(heading="Kurz", text="Ein kurzer Abschnitt."),
            Section(heading="Leer", text=""),
        ),
    )


def test_chunks_respect_the_limit_and_keep_title_heading_url_and_position() -> None:
    chunks = chunk_document(long_document(), max_chars=300, overlap_chars=60)

    assert [c.position for c in chunks] == list(range(len(chunks)))
    assert all(0 < len(c.text) <= 300 for c in chunks)
    assert all(c.text.strip() for c in chunks)
    assert {c.title for c in chunks} == {"Leistungen"}
    assert {c.url for c in chunks} == {"https://praxis.example/leistungen"}
    assert [c.heading for c in chunks][:2] == [None, "Zahnreinigung"]
    assert chunks[-2].heading == "Kurz" and chunks[-2].text == "Kurz\n\nEin kurzer Abschnitt."
    # A heading without text still tells what the section is about.
    assert chunks[-1].heading == "Leer" and chunks[-1].text == "Leer"
    cleaning = [c for c in chunks if c.heading == "Zahnreinigung"]
    assert len(cleaning) > 4
    assert all(c.text.startswith("Zahnreinigung\n\n") for c in cleaning)


def test_every_sentence_is_whole_in_some_chunk() -> None:
    chunks = chunk_document(long_document(), max_chars=250, overlap_chars=80)
    for sentence in SENTENCES:
        assert any(sentence in c.text for c in chunks), sentence


def test_consecutive_chunks_of_a_section_overlap() -> None:
    chunks = [
        c
        for c in chunk_document(long_document(), max_chars=250, overlap_chars=100)
        if c.heading == "Zahnreinigung"
    ]
    prefix = "Zahnreinigung\n\n"
    for previous, current in itertools.pairwise(chunks):
        body = current.text.removeprefix(prefix)
        shared = body.split(" ")[0:3]
        assert " ".join(shared) in previous.text
        assert body[:20] in previous.text


def test_no_overlap_when_asked_for_none() -> None:
    chunks = chunk_document(long_document(), max_chars=250, overlap_chars=0)
    bodies = [c.text.removeprefix("Zahnreinigung\n\n") for c in chunks if c.heading]
    joined = " ".join(bodies)
    assert joined.count(SENTENCES[0]) == 4


def test_a_question_and_answer_stays_whole_when_it_fits() -> None:
    answer = " ".join(SENTENCES[:3])
    doc = from_qa(
        [("Was kostet die Zahnreinigung?", answer), ("Parken?", "Hinter dem Haus.")], "FAQ"
    )

    chunks = chunk_document(doc, max_chars=400)

    assert [c.text for c in chunks] == [
        f"Was kostet die Zahnreinigung?\n\n{answer}",
        "Parken?\n\nHinter dem Haus.",
    ]
    assert [c.heading for c in chunks] == ["Was kostet die Zahnreinigung?", "Parken?"]


def test_words_longer_than_a_chunk_are_cut() -> None:
    doc = Document(title="Daten", sections=(Section(heading="Code", text="x" * 1000 + " Ende."),))
    chunks = chunk_document(doc, max_chars=120, overlap_chars=30)
    assert all(len(c.text) <= 120 for c in chunks)
    assert "".join(c.text.removeprefix("Code\n\n") for c in chunks).count("x") >= 1000
    assert chunks[-1].text.endswith("Ende.")


def test_german_abbreviations_and_dates_do_not_end_a_sentence() -> None:
    text = (
        "Dr. Müller behandelt z. B. auch Kinder am 1. Januar. Termine gibt es u. a. online. "
        "Fragen? Rufen Sie an!"
    )
    assert split_sentences(text) == [
        "Dr. Müller behandelt z. B. auch Kinder am 1. Januar.",
        "Termine gibt es u. a. online.",
        "Fragen?",
        "Rufen Sie an!",
    ]


def test_near_duplicate_key_ignores_case_punctuation_and_spacing_only() -> None:
    key = near_duplicate_key("Die Zahnreinigung kostet 89 Euro.")
    assert near_duplicate_key("die  zahnreinigung \u2013 kostet 89 EURO!") == key
    assert near_duplicate_key("Die Zahnreinigung\nkostet 89 Euro") == key
    assert near_duplicate_key("Die Zahnreinigung kostet 99 Euro.") != key
    assert near_duplicate_key("Straße") == near_duplicate_key("STRASSE")


@settings(max_examples=150, deadline=None)
@given(
    text=st.lists(
        st.sampled_from([*"abcäöüß ABC.!?\n", "Zahn", "reinigung ", "\n\n", "z. B.", "x" * 90]),
        max_size=400,
    ).map("".join),
    heading=st.one_of(st.none(), st.text(max_size=80)),
    max_chars=st.integers(min_value=50, max_value=600),
    overlap=st.integers(min_value=0, max_value=300),
)
def test_any_text_gives_non_empty_chunks_within_the_limit(
    text: str, heading: str | None, max_chars: int, overlap: int
) -> None:
    doc = Document(title="T", sections=(Section(heading=heading, text=text),))
    chunks = chunk_document(doc, max_chars=max_chars, overlap_chars=overlap)
    assert all(0 < len(c.text) <= max_chars and c.text.strip() for c in chunks)
    # Text is only cut mid-word where it has no space for half a chunk.
    short_tokens = " ".join(t for t in text.split() if len(t) <= 15)
    source_words = set(re.findall(r"\w+", short_tokens))
    chunk_words = set(re.findall(r"\w+", " ".join(c.text for c in chunks)))
    assert source_words <= chunk_words
