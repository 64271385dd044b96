"""What a visitor's message is about, beyond the values it carries (de/en keyword rules)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from demandly.engine.offline.language import (
    STOP_WORDS,
    fold,
    has_any,
    has_phrase,
    is_question,
    phrases,
    remove_all,
    sentences,
    words,
)

GREETING = phrases(
    "hallo", "hi", "hey", "moin", "moin moin", "servus", "grüß gott", "grüezi", "guten tag",
    "guten morgen", "guten abend", "hallöchen", "hello", "hiya", "good morning",
    "good afternoon", "good evening", "howdy", "hi there",
)  # fmt: skip
THANKS = phrases(
    "danke", "dankeschön", "danke schön", "vielen dank", "besten dank", "herzlichen dank",
    "danke sehr", "dankeschoen", "merci", "thanks", "thank you", "thank you very much", "thx",
    "cheers", "much appreciated",
)  # fmt: skip
GOODBYE = phrases(
    "tschüss", "tschüs", "tschuess", "tschau", "auf wiederhoeren", "schoenen tag noch",
    "auf wiedersehen", "auf wiederhören", "ciao", "bis bald",
    "bis dann", "bis später", "schönen tag noch", "einen schönen tag", "bye", "bye bye",
    "goodbye", "good bye", "see you", "have a nice day", "have a good day", "take care",
)  # fmt: skip
DONE = phrases(
    "das wars", "das war's", "das war es", "das war alles", "nichts weiter", "nichts mehr",
    "sonst nichts", "alles gut", "passt so", "that's all", "thats all", "that is all",
    "nothing else", "nothing more", "i'm good", "im good", "all good", "no thanks",
    "no thank you", "nein danke",
)  # fmt: skip
AFFIRM = phrases(
    "ja", "jawohl", "jep", "jo", "genau", "gerne", "gern", "klar", "sicher", "richtig",
    "korrekt", "stimmt", "ok", "okay", "ja bitte", "ja gerne", "yes", "yeah", "yep", "yup",
    "sure", "of course", "correct", "right", "absolutely", "definitely", "yes please",
)  # fmt: skip
DENY = phrases(
    "nein", "nee", "nö", "nicht", "kein", "keine", "lieber nicht", "no", "nope", "nah",
    "not really", "rather not", "no thanks", "nein danke", "möchte ich nicht", "i'd rather not",
)  # fmt: skip
CORRECTION = phrases(
    "eigentlich", "korrektur", "korrigieren", "korrigiere", "falsch", "vertippt", "sorry",
    "stattdessen", "doch", "ich meinte", "richtig ist", "actually", "correction", "correct",
    "wrong", "instead", "mistake", "typo", "i meant", "should be", "update",
)  # fmt: skip

_PERSON = phrases(
    "mensch", "menschen", "mitarbeiter", "mitarbeiterin", "mitarbeitenden", "person",
    "berater", "beraterin", "jemand", "jemanden", "jemandem", "kollege", "kollegin", "chef",
    "chefin", "inhaber", "inhaberin", "kundenservice", "kundendienst", "human", "humans",
    "agent", "representative", "operator", "someone", "somebody", "staff", "real person",
    "live agent", "customer service", "support team",
)  # fmt: skip
_CONNECT = phrases(
    "sprechen", "reden", "verbinden", "verbunden", "durchstellen", "weiterleiten",
    "telefonieren", "schreiben", "speak", "talk", "connect", "transfer", "chat",
    "reach", "get me", "need",
)  # fmt: skip
_NOT_A_BOT = phrases(
    "kein bot", "keinen bot", "keine maschine", "kein roboter", "echter mensch",
    "echten menschen", "echte person", "echten person", "not a bot", "no bot", "no robot",
    "not a robot", "real human",
)  # fmt: skip

_HOURS_STRONG = re.compile(
    r"(oe?ffnungszeit|geoe?ffnet|sprechzeit|sprechstunde|opening hour|business hour"
    r"|office hour|opening time)"
)
_HOURS_WEAK = phrases(
    "offen", "geschlossen", "erreichbar", "open", "closed", "hours", "until when", "bis wann",
    "ab wann",
)  # fmt: skip
_HOURS_SENTENCE_END = re.compile(r"\b(auf|zu)\W*$")
_PRICE = re.compile(
    r"(kost|preis|gebuhr|teuer|tarif|honorar|was zahl|wie ?viel\b|price|pricing|cost"
    r"|how much|\bfees?\b|expensive|\brates?\b)"
)


@dataclass(frozen=True)
class Intents:
    greeting: bool = False
    thanks: bool = False
    goodbye: bool = False
    done: bool = False
    affirm: bool = False
    deny: bool = False
    handoff: bool = False
    hours: bool = False
    price: bool = False
    question: bool = False
    correction: bool = False
    # Nothing in the message beyond courtesy words and yes/no (no content of its own).
    only_courtesy: bool = False


def _strip(folded: str, groups: tuple[frozenset[str], ...]) -> list[str]:
    """The content words left after removing the given phrases and stop words."""
    for group in groups:
        folded = remove_all(folded, group)
    return [w for w in words(folded) if w not in STOP_WORDS]


def wants_person(folded: str, question: bool, extra_keywords: tuple[str, ...] = ()) -> bool:
    """A request for a person: "mit einem Menschen sprechen", "talk to a human", "Mitarbeiter
    bitte", or one of the agent's own handoff keywords. A question needs a verb of contact, so
    "Wie viele Mitarbeiter haben Sie?" is not a request."""
    if any(kw.strip() and has_phrase(folded, fold(kw.strip())) for kw in extra_keywords):
        return True
    if has_any(folded, _NOT_A_BOT):
        return True
    if not has_any(folded, _PERSON):
        return False
    if has_any(folded, _CONNECT):
        return True
    return not question and len(_strip(folded, (_PERSON,))) <= 2


def _weak_hours(text: str) -> bool:
    folded = fold(text)
    if has_any(folded, _HOURS_WEAK):
        return True
    return any(_HOURS_SENTENCE_END.search(fold(s)) for s in sentences(text))


@lru_cache(maxsize=4096)
def detect(text: str, handoff_keywords: tuple[str, ...] = ()) -> Intents:
    folded = fold(text)
    question = is_question(text)
    courtesy = (GREETING, THANKS, GOODBYE, DONE, AFFIRM, DENY)
    return Intents(
        greeting=has_any(folded, GREETING),
        thanks=has_any(folded, THANKS),
        goodbye=has_any(folded, GOODBYE),
        done=has_any(folded, DONE),
        affirm=has_any(folded, AFFIRM),
        deny=has_any(folded, DENY),
        handoff=wants_person(folded, question, handoff_keywords),
        hours=bool(_HOURS_STRONG.search(folded)) or (question and _weak_hours(text)),
        price=bool(_PRICE.search(folded)),
        question=question,
        correction=has_any(folded, CORRECTION),
        only_courtesy=not _strip(folded, courtesy),
    )
