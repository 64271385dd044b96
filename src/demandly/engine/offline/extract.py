"""Finding, validating and normalising qualification values in a visitor's message.

One message may carry several values ("Ich bin Max Muster, max@example.com, 0171 1234567").
Unambiguous types (e-mail, phone, explicit dates) are found anywhere; numbers, choices, yes/no
and free text only when the field is the one being asked for, or named in the message ("mein
Name ist ...", "3 Personen"). Each value found is blanked out of the working text, so what is
left over can be read as free text. A field is matched by the value's type and, when several
fields share a type, by keywords from its key and labels.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime, time
from functools import lru_cache
from typing import Any

import phonenumbers
from email_validator import EmailNotValidError, validate_email

from demandly.engine.offline.intents import AFFIRM, DENY, Intents, detect
from demandly.engine.offline.language import STOP_WORDS, content_stems, fold, phrases, words
from demandly.engine.providers.base import AgentContext, QualificationField

_EMAIL = re.compile(r"[^\s,;<>()\"'„“”]*@[^\s,;<>()\"'„“”]*")
_NUMERIC_DATE = re.compile(
    r"(?<![\d.])(?:\d{1,2}\.\s?\d{1,2}\.(?:\s?\d{4}|\d{2})?|\d{4}-\d{2}-\d{2}|\d{1,2}/\d{1,2}(?:/\d{2,4})?)(?![\d/])"
)
_DIGITS = re.compile(r"\+?\d[\d \-/().]*\d|\d")
_NUMBER = re.compile(r"(?<![\w])-?\d+(?:[.,]\d+)*")
_CLAUSE_BREAK = re.compile(r"[,;\n]|\s(?:und|and|sowie)\s|[.!?](?:\s|$)")

_MONTHS = (
    "januar|jänner|februar|märz|maerz|april|mai|juni|juli|august|september|oktober|november"
    "|dezember|jan|feb|mär|mar|apr|jun|jul|aug|sep|sept|okt|oct|nov|dez|dec|january|february"
    "|march|may|june|july|october|december"
)
_WEEKDAYS = (
    "montag|dienstag|mittwoch|donnerstag|freitag|samstag|sonnabend|sonntag|monday|tuesday"
    "|wednesday|thursday|friday|saturday|sunday"
)
_DATE_WORDS = re.compile(
    rf"(?<![\w])(?:"
    rf"\d{{1,2}}\.?\s*(?:{_MONTHS})\.?(?:\s+\d{{4}})?"
    rf"|\d{{1,2}}(?:st|nd|rd|th)?\s+of\s+(?:{_MONTHS})(?:\s+\d{{4}})?"
    rf"|(?:{_MONTHS})\s+\d{{1,2}}(?:st|nd|rd|th)?(?:,?\s+\d{{4}})?"
    rf"|(?:(?:nächsten|nächster|naechsten|kommenden|kommender|diesen|dieser|next|this|coming)\s+)?(?:{_WEEKDAYS})"
    rf"|übermorgen|uebermorgen|heute|morgen|today|tomorrow|day after tomorrow"
    rf"|(?:nächste|naechste|kommende|next)\s+(?:woche|week)"
    rf"|in\s+\d+\s+(?:tagen|wochen|days|weeks)"
    rf")(?![\w])",
    re.IGNORECASE,
)
_NOT_A_DATE_CONTEXT = re.compile(r"guten\s+morgen", re.IGNORECASE)
_DATE_FILLER = re.compile(
    r"^(?:am|an|den|ab|zum|für|fuer|on|the|for|at|by)\s+|\s+(?:bitte|please)$", re.IGNORECASE
)
_WEEKDAY_PREFIX = re.compile(
    r"^(?:nächsten|nächster|naechsten|kommenden|kommender|diesen|dieser|coming)\s+", re.I
)

# "mein Name ist X" may overwrite a name already noted; "ich bin X" only fills an empty one
# (or with a correction word), since "I'm fine" / "ich bin gespannt" are not names.
_NAME_LEAD_STRONG = re.compile(
    r"(?:^|[\s,;.!])(?:ich\s+heiße|ich\s+heisse|mein\s+name\s+ist|mein\s+name\s+lautet"
    r"|mein\s+name\s*:|name\s*:|my\s+name\s+is|my\s+name's|name's)"
    r"\s+(?:eigentlich\s+|actually\s+|übrigens\s+)?",
    re.IGNORECASE,
)
_NAME_LEAD_WEAK = re.compile(
    r"(?:^|[\s,;.!])(?:ich\s+bin|hier\s+ist|hier\s+spricht|i\s+am|i'm|this\s+is)"
    r"\s+(?:eigentlich\s+|actually\s+|übrigens\s+)?",
    re.IGNORECASE,
)
_LEAD_IN_ONLY = re.compile(
    r"^(?:ich\s+bin|ich\s+heiße|ich\s+heisse|mein\s+name\s+ist|my\s+name\s+is|i\s+am|i'm"
    r"|this\s+is|hier\s+ist)\s+",
    re.IGNORECASE,
)
_VALUE_END = re.compile(r"[,;\n]|\s(?:und|and|meine?|my|mit|with)\s|[!?]|\.(?:\s|$)", re.IGNORECASE)
_NAME_PARTICLES = frozenset(
    {"von", "van", "de", "der", "den", "zu", "di", "da", "del", "la", "le", "dos", "du", "ter"}
)
_NOT_NAMES = phrases(
    "termin", "frage", "fragen", "hilfe", "info", "infos", "information", "preis", "preise",
    "kosten", "appointment", "question", "help", "booking", "buchung", "anfrage", "beratung",
    "notfall", "emergency", "patient", "patientin", "kunde", "kundin", "neu", "new",
    "interessiert", "interested", "unsicher", "student", "hmm", "hm", "ah", "aha", "äh", "ähm",
    "test", "egal", "fine", "good", "gut", "well", "weiß", "know", "sorry", "bot", "mensch",
    "human", "leider", "looking", "zufrieden", "krank", "sick", "verheiratet", "single",
    "zahnschmerzen", "schmerzen", "pain", "great", "super", "toll", "prima", "klasse",
    "perfekt", "perfect", "nice", "schön", "wunderbar", "awesome", "cool", "okay", "gespannt",
    "froh", "happy", "glad", "there", "back", "zurück", "wieder", "sure", "ready",
)  # fmt: skip
_INTRODUCES = re.compile(
    r"\s*(?:ist|lautet|is|are|:|=)\s+(?:eigentlich\s+|actually\s+)?", re.IGNORECASE
)
_ARTICLE = re.compile(r"^(?:der|die|das|the)\s+", re.IGNORECASE)

_NUMBER_WORDS = {
    fold(word): value
    for value, group in enumerate(
        (
            ("null", "zero"),
            ("eins", "ein", "eine", "einen", "one"),
            ("zwei", "two"),
            ("drei", "three"),
            ("vier", "four"),
            ("fünf", "five"),
            ("sechs", "six"),
            ("sieben", "seven"),
            ("acht", "eight"),
            ("neun", "nine"),
            ("zehn", "ten"),
            ("elf", "eleven"),
            ("zwölf", "twelve"),
        )
    )
    for word in group
}

_TYPE_KEYWORDS = {
    "email": phrases("email", "mail", "mailadresse", "emailadresse"),
    "phone": phrases(
        "telefon", "telefonnummer", "nummer", "handy", "handynummer", "mobil", "mobilnummer",
        "rufnummer", "tel", "festnetz", "phone", "number", "mobile", "cell", "telephone",
    ),
    "date": phrases("datum", "termin", "wunschtermin", "tag", "date", "day", "appointment"),
}  # fmt: skip
_NAME_KEYWORDS = phrases("name", "vorname", "nachname", "heisse", "heiße", "surname")


@dataclass(frozen=True)
class Invalid:
    key: str
    raw: str
    # The raw text has the shape of the type (an "@", enough digits): a typo, not confusion.
    shaped: bool


@dataclass
class Extraction:
    values: dict[str, Any] = field(default_factory=dict)
    invalid: list[Invalid] = field(default_factory=list)

    def found(self, key: str) -> bool:
        return key in self.values or any(i.key == key for i in self.invalid)


@dataclass
class _Work:
    context: AgentContext
    text: str
    remaining: str
    pending: str | None
    captured: dict[str, Any]
    intents: Intents
    lang: str
    now: datetime
    allow_text: bool
    result: Extraction = field(default_factory=Extraction)

    def blank(self, start: int, end: int) -> None:
        """Replace a used span by a clause break of the same length (positions stay valid)."""
        if end > start:
            gap = "," + " " * (end - start - 1)
            self.remaining = self.remaining[:start] + gap + self.remaining[end:]

    def fields(self, kind: str) -> list[QualificationField]:
        return [f for f in self.context.qualification if f.type == kind]

    def wanted(self, item: QualificationField) -> bool:
        """Still open in this message: not filled earlier, or being corrected."""
        return item.key not in self.result.values and (
            item.key not in self.captured or item.key == self.pending or self.intents.correction
        )


def is_name_field(item: QualificationField) -> bool:
    if item.type != "text":
        return False
    tokens = set(words(item.key.replace("_", " ")))
    for label in item.labels.values():
        tokens.update(words(label))
    return bool(tokens & _NAME_KEYWORDS)


def _keywords(item: QualificationField, *, own: bool = False) -> frozenset[str]:
    """Words that name the field: from its key and labels (``own``), plus its type's."""
    return _keywords_of(item.key, item.type, tuple(item.labels.values()), own)


@lru_cache(maxsize=1024)
def _keywords_of(key: str, kind: str, labels: tuple[str, ...], own: bool) -> frozenset[str]:
    tokens = set(words(key.replace("_", " ")))
    for label in labels:
        tokens.update(words(label))
    if not own:
        tokens.update(_TYPE_KEYWORDS.get(kind, ()))
        if kind == "text" and tokens & _NAME_KEYWORDS:
            tokens.update(_NAME_KEYWORDS)
    return frozenset(t for t in tokens if t not in STOP_WORDS and len(t) >= 3)


def mentions(item: QualificationField, text: str, *, own: bool = False) -> bool:
    """Whether the text names the field ("Nummer" names "Telefonnummer", "Handy" a phone)."""
    keywords = _keywords(item, own=own)
    for token in words(text):
        if token in STOP_WORDS or len(token) < 3:
            continue
        for keyword in keywords:
            if token == keyword:
                return True
            if len(keyword) >= 4 and (token.endswith(keyword) or token.startswith(keyword)):
                return True
            if len(token) >= 4 and keyword.startswith(token):
                return True
    return False


def _clause_before(text: str, position: int) -> str:
    head = text[:position]
    breaks = list(_CLAUSE_BREAK.finditer(head))
    return head[breaks[-1].end() :] if breaks else head


def _target(work: _Work, kind: str, clause: str) -> QualificationField | None:
    candidates = work.fields(kind)
    if not candidates:
        return None
    if len(candidates) == 1:
        return candidates[0]
    for own in (True, False):
        named = [f for f in candidates if mentions(f, clause, own=own)]
        if named:
            return named[0]
    for item in candidates:
        if item.key == work.pending:
            return item
    taken = work.captured.keys() | work.result.values.keys()
    missing = [f for f in candidates if f.key not in taken]
    return missing[0] if missing else None


def _store(work: _Work, item: QualificationField, value: Any) -> None:
    if item.key in work.result.values:
        return
    work.result.values[item.key] = value


# --- e-mail -----------------------------------------------------------------------------------


def normalise_email(raw: str) -> str | None:
    try:
        checked = validate_email(raw, check_deliverability=False)
    except EmailNotValidError:
        return None
    return checked.normalized.lower()


def _emails(work: _Work) -> None:
    for match in _EMAIL.finditer(work.text):
        raw = match.group().strip(".,;:!?")
        if not raw or raw == "@":
            continue
        item = _target(work, "email", _clause_before(work.text, match.start()))
        work.blank(match.start(), match.end())
        if item is None:
            continue
        value = normalise_email(raw)
        if value is None:
            work.result.invalid.append(Invalid(item.key, raw, shaped=True))
        else:
            _store(work, item, value)


# --- phone ------------------------------------------------------------------------------------


def normalise_phone(raw: str, region: str) -> str | None:
    try:
        number = phonenumbers.parse(raw, region or None)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def phone_example(region: str) -> str:
    number = phonenumbers.example_number_for_type(region, phonenumbers.PhoneNumberType.MOBILE)
    if number is None:
        return "+49 1512 3456789"
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.NATIONAL)


def _phones(work: _Work) -> None:
    phone_fields = work.fields("phone")
    if not phone_fields:
        return
    region = (work.context.phone_region or "DE").upper()
    for match in phonenumbers.PhoneNumberMatcher(
        work.remaining, region, leniency=phonenumbers.Leniency.VALID
    ):
        item = _target(work, "phone", _clause_before(work.text, match.start))
        work.blank(match.start, match.end)
        if item is not None:
            value = phonenumbers.format_number(match.number, phonenumbers.PhoneNumberFormat.E164)
            _store(work, item, value)
    asked = work.pending in {f.key for f in phone_fields}
    named = [f for f in phone_fields if mentions(f, work.remaining)]
    if not asked and not named:
        return
    for match in _DIGITS.finditer(work.remaining):
        raw = match.group().strip()
        digits = sum(ch.isdigit() for ch in raw)
        if digits < 3 and not asked:
            continue
        item = named[0] if named else next(f for f in phone_fields if f.key == work.pending)
        if work.result.found(item.key):
            return
        work.result.invalid.append(Invalid(item.key, raw, shaped=digits >= 3))
        work.blank(match.start(), match.end())
        return


# --- dates ------------------------------------------------------------------------------------


def _date_settings(now: datetime) -> dict[str, Any]:
    return {
        "PREFER_DATES_FROM": "future",
        "RELATIVE_BASE": now,
        "RETURN_AS_TIMEZONE_AWARE": False,
        "DATE_ORDER": "DMY",
        "PREFER_DAY_OF_MONTH": "first",
    }


def parse_date(raw: str, lang: str, now: datetime) -> str | None:
    """ISO date from a German or English phrase, relative to ``now`` and future-preferring."""
    return _parse_date(raw, lang, now.date())


@lru_cache(maxsize=4096)
def _parse_date(raw: str, lang: str, today: date) -> str | None:
    import dateparser  # imported lazily: it loads language data on first use

    text = _DATE_FILLER.sub("", raw.strip(" .,!?")).strip()
    text = _WEEKDAY_PREFIX.sub("", text)
    if not text or len(text) > 60:
        return None
    languages = ["de", "en"] if lang == "de" else ["en", "de"]
    base = datetime.combine(today, time(12))
    try:
        parsed = dateparser.parse(text, languages=languages, settings=_date_settings(base))
    except Exception:  # dateparser raises assorted errors on odd input; treat as "no date"
        return None
    if parsed is None:
        return None
    if _has_next(raw) and parsed.date() <= today:
        return None
    return parsed.date().isoformat()


def _has_next(raw: str) -> bool:
    return bool(re.match(r"^\s*(?:am\s+|on\s+)?(?:nächsten|naechsten|next)\s", raw, re.I))


def _date_candidates(text: str) -> list[re.Match[str]]:
    blocked = [m.span() for m in _NOT_A_DATE_CONTEXT.finditer(text)]
    found = [m for m in _NUMERIC_DATE.finditer(text)]
    found += [
        m
        for m in _DATE_WORDS.finditer(text)
        if not any(start <= m.start() < end for start, end in blocked)
    ]
    found.sort(key=lambda m: m.start())
    result: list[re.Match[str]] = []
    for m in found:
        if result and m.start() < result[-1].end():
            continue
        result.append(m)
    return result


_EXPLICIT_DATE = re.compile(rf"\d|{_MONTHS}", re.IGNORECASE)
_DATE_PREPOSITION = re.compile(
    r"(?:^|\s)(?:am|ab|an|für|fuer|bis|zum|on|for|by|until|from)\s*$", re.IGNORECASE
)


def _meant_as_date(match: re.Match[str], text: str, clause: str, item: QualificationField) -> bool:
    """Unasked, "heute" or "Freitag" is a date for the field only when said as one ("am
    Freitag", "Termin morgen"), not in "Ich habe heute Zahnschmerzen"."""
    said = match.group()
    if _EXPLICIT_DATE.search(said) or _has_next(said) or mentions(item, clause, own=False):
        return True
    return bool(_DATE_PREPOSITION.search(text[: match.start()]))


def _dates(work: _Work) -> None:
    date_fields = work.fields("date")
    if not date_fields:
        return
    asked = next((f for f in date_fields if f.key == work.pending), None)
    if work.intents.question and asked is None:
        return
    for match in _date_candidates(work.remaining):
        clause = _clause_before(work.text, match.start())
        item = _target(work, "date", clause)
        if item is None or not (work.wanted(item) or mentions(item, clause)):
            continue
        if item is not asked and not _meant_as_date(match, work.remaining, clause, item):
            continue
        value = parse_date(match.group(), work.lang, work.now)
        work.blank(match.start(), match.end())
        if value is None:
            work.result.invalid.append(Invalid(item.key, match.group(), shaped=True))
        else:
            _store(work, item, value)
    if asked is None or work.result.found(asked.key) or work.intents.question:
        return
    rest = work.remaining.strip(" ,.;!?")
    if not rest or work.intents.only_courtesy:
        return
    value = parse_date(rest, work.lang, work.now)
    if value is None and work.intents.deny:
        return  # "weiß ich nicht": declined, not a wrong date
    if value is not None:
        _store(work, asked, value)
        work.remaining = ""
    elif any(ch.isdigit() for ch in rest) or len(rest.split()) <= 3:
        work.result.invalid.append(
            Invalid(asked.key, rest, shaped=any(ch.isdigit() for ch in rest))
        )


# --- numbers ----------------------------------------------------------------------------------


def normalise_number(raw: str, lang: str) -> int | float | None:
    text = raw.strip()
    if lang == "de":
        if re.fullmatch(r"-?\d{1,3}(?:\.\d{3})+(?:,\d+)?", text):
            text = text.replace(".", "")
        text = text.replace(",", ".")
    else:
        if re.fullmatch(r"-?\d{1,3}(?:,\d{3})+(?:\.\d+)?", text):
            text = text.replace(",", "")
        text = text.replace(",", ".")
    try:
        value = float(text)
    except ValueError:
        return None
    return int(value) if value.is_integer() and abs(value) < 2**53 else value


def _numbers(work: _Work) -> None:
    number_fields = work.fields("number")
    if not number_fields or work.intents.question:
        return
    asked = next((f for f in number_fields if f.key == work.pending), None)
    for match in _NUMBER.finditer(work.remaining):
        near = work.remaining[max(0, match.start() - 30) : match.end() + 30]
        named = [f for f in number_fields if mentions(f, near) and work.wanted(f)]
        item = named[0] if named else asked
        if item is None or work.result.found(item.key):
            continue
        value = normalise_number(match.group(), work.lang)
        work.blank(match.start(), match.end())
        if value is None:
            work.result.invalid.append(Invalid(item.key, match.group(), shaped=True))
        else:
            _store(work, item, value)
    if asked is None or work.result.found(asked.key) or work.intents.only_courtesy:
        return
    for token in words(work.remaining):
        if token in _NUMBER_WORDS:
            _store(work, asked, _NUMBER_WORDS[token])
            return
    rest = work.remaining.strip(" ,.;!?")
    if rest and len(rest.split()) <= 3 and not work.intents.deny:
        work.result.invalid.append(Invalid(asked.key, rest, shaped=False))


# --- choices ----------------------------------------------------------------------------------


def match_option(item: QualificationField, text: str, *, loose: bool) -> str | None:
    folded = fold(text)
    hits = []
    for option in item.options:
        position = _phrase_position(folded, fold(option))
        if position is not None:
            hits.append((position, option))
    if hits:
        return min(hits)[1]
    if not loose:
        return None
    stripped = folded.strip(" .!?,")
    if stripped.isdigit() and 1 <= int(stripped) <= len(item.options):
        return item.options[int(stripped) - 1]
    said = content_stems(text)
    for option in item.options:
        wanted = content_stems(option)
        if wanted and wanted <= said:
            return option
    for option in item.options:
        key = fold(option)
        if len(stripped) >= 3 and key.startswith(stripped):
            return option
    return None


def _phrase_position(folded: str, phrase: str) -> int | None:
    match = re.search(rf"(?<![a-z0-9]){re.escape(phrase)}(?![a-z0-9])", folded)
    return match.start() if match else None


def _no_answer(intents: Intents) -> bool:
    """A message that does not try to answer: courtesy, a question, or "no"."""
    return intents.only_courtesy or intents.question or intents.deny


def _choices(work: _Work) -> None:
    for item in work.fields("choice"):
        asked = item.key == work.pending
        if work.result.found(item.key) or (work.intents.question and not asked):
            continue
        if not asked and not work.wanted(item):
            continue
        option = match_option(item, work.remaining, loose=asked)
        if option is not None:
            _store(work, item, option)
        elif asked and not (
            work.intents.only_courtesy or work.intents.question or work.intents.deny
        ):
            rest = work.remaining.strip(" ,.;!?")
            if rest and len(rest.split()) <= 4:
                work.result.invalid.append(Invalid(item.key, rest, shaped=True))


# --- yes/no -----------------------------------------------------------------------------------


def _first_position(folded: str, group: frozenset[str]) -> int | None:
    found = [p for phrase in group if (p := _phrase_position(folded, phrase)) is not None]
    return min(found, default=None)


def yes_or_no(text: str) -> bool | None:
    """The first yes or no word in the text decides ("Ja, aber nicht ..." is yes)."""
    folded = fold(text)
    first_yes = _first_position(folded, AFFIRM)
    first_no = _first_position(folded, DENY)
    if first_yes is None and first_no is None:
        return None
    if first_no is None:
        return True
    if first_yes is None:
        return False
    return first_yes < first_no


def _booleans(work: _Work) -> None:
    for item in work.fields("boolean"):
        if item.key != work.pending or work.result.found(item.key) or work.intents.question:
            continue
        answer = yes_or_no(work.remaining)
        if answer is not None:
            _store(work, item, answer)
        else:
            rest = work.remaining.strip(" ,.;!?")
            if rest and len(rest.split()) <= 4:
                work.result.invalid.append(Invalid(item.key, rest, shaped=False))


# --- free text --------------------------------------------------------------------------------


def plausible_name(value: str) -> bool:
    tokens = value.split()
    if not 1 <= len(tokens) <= 5 or len(value) > 80:
        return False
    if any(ch.isdigit() or ch in "@?/" for ch in value) or not any(ch.isalpha() for ch in value):
        return False
    tokens = words(value)
    for token in tokens:
        if token in _NOT_NAMES or (token in STOP_WORDS and token not in _NAME_PARTICLES):
            return False
    return any(token not in _NAME_PARTICLES for token in tokens)


def clean_text(value: str) -> str:
    value = value.strip().strip("\"'„“”»«").strip(" ,;:.!-\u2013")
    value = re.sub(r"^(?:eigentlich|actually)\s+", "", value, flags=re.IGNORECASE)
    return re.sub(r"\s+", " ", value)[:500]


def _cut_value(text: str) -> str:
    end = _VALUE_END.search(text)
    return text[: end.start()] if end else text


def _named_text(work: _Work, item: QualificationField) -> str | None:
    """A value introduced for this field: "ich bin ...", "mein Name ist ...", "Firma: ..."."""
    if is_name_field(item):
        leads = [_NAME_LEAD_STRONG]
        if item.key not in work.captured or work.intents.correction:
            leads.append(_NAME_LEAD_WEAK)
        for lead in leads:
            for match in lead.finditer(work.remaining):
                tail = _cut_value(work.remaining[match.end() :])
                value = clean_text(_ARTICLE.sub("", tail))
                if plausible_name(value):
                    return value
        return None
    for token in re.finditer(r"[^\W\d_]{3,}", work.remaining):
        if not mentions(item, token.group()):
            continue
        follow = _INTRODUCES.match(work.remaining, token.end())
        if follow:
            value = clean_text(_cut_value(work.remaining[follow.end() :]))
            if value and not _only_field_words(work, value):
                return value
    return None


def _segments(text: str) -> list[str]:
    parts = re.split(r"[,;\n]|\s(?:und|and)\s|[.!?](?:\s|$)", text)
    return [clean_text(_LEAD_IN_ONLY.sub("", p.strip())) for p in parts if p.strip()]


def _meaningful(segment: str) -> bool:
    if not segment or detect(segment).only_courtesy:
        return False
    return any(w not in STOP_WORDS for w in words(segment))


def _pending_text(work: _Work, item: QualificationField) -> str | None:
    segments = [s for s in _segments(work.remaining) if _meaningful(s)]
    segments = [s for s in segments if not _only_field_words(work, s)]
    if not segments:
        return None
    if is_name_field(item):
        return next((s for s in segments if plausible_name(s)), None)
    return clean_text(", ".join(segments))


def _only_field_words(work: _Work, segment: str) -> bool:
    """Residue such as "meine E-Mail ist" once the address itself was taken out."""
    content = [w for w in words(segment) if w not in STOP_WORDS]
    return all(any(mentions(f, w) for f in work.context.qualification) for w in content)


def _texts(work: _Work) -> None:
    for item in work.fields("text"):
        if work.result.found(item.key):
            continue
        value = _named_text(work, item)
        if value is None and item.key == work.pending and work.allow_text:
            if work.intents.question or work.intents.only_courtesy or work.intents.handoff:
                continue
            value = _pending_text(work, item)
        if value is None and work.pending is None and item.key not in work.captured:
            value = _bare_name(work, item)
        if value:
            _store(work, item, value)


def _bare_name(work: _Work, item: QualificationField) -> str | None:
    """A message that is nothing but a full name ("Max Muster"), though nothing was asked."""
    if not is_name_field(item) or not work.allow_text or work.intents.question:
        return None
    segments = [s for s in _segments(work.remaining) if _meaningful(s)]
    if len(segments) != 1:
        return None
    name = segments[0]
    parts = name.split()
    if 2 <= len(parts) <= 4 and all(p[0].isupper() for p in parts) and plausible_name(name):
        return name
    return None


def extract(
    context: AgentContext,
    text: str,
    *,
    pending: str | None,
    captured: dict[str, Any],
    intents: Intents,
    lang: str,
    now: datetime,
    allow_text: bool = True,
) -> Extraction:
    """Values for the qualification fields found in one message, plus invalid attempts."""
    work = _Work(
        context=context,
        text=text,
        remaining=text,
        pending=pending,
        captured=captured,
        intents=intents,
        lang=lang,
        now=now,
        allow_text=allow_text,
    )
    if context.qualification:
        _emails(work)
        _dates(work)
        for match in _NUMERIC_DATE.finditer(work.remaining):
            work.blank(match.start(), match.end())  # "15.04.2025" is no phone number
        _phones(work)
        _numbers(work)
        _choices(work)
        _booleans(work)
        _texts(work)
    work.result.values = {
        key: value for key, value in work.result.values.items() if captured.get(key) != value
    }
    return work.result
