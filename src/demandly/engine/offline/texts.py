# ruff: noqa: RUF001 (typographic dashes and quotes are intended)
"""Everything the offline engine says, in German ("Sie") and English.

``say(lang, key, seed, **values)`` picks one of a phrase's variants deterministically from
``seed`` (the turn number), so replies vary a little without any randomness.
"""

from __future__ import annotations

from datetime import date, datetime, time

from demandly.engine.providers.base import QualificationField

PHRASES: dict[str, dict[str, tuple[str, ...]]] = {
    "de": {
        "greeting": ("Willkommen bei {business}! Ich bin {persona} und helfe Ihnen gern weiter.",),
        "greeting_nobusiness": ("Guten Tag! Ich bin {persona} und helfe Ihnen gern weiter.",),
        "how_can_i_help": ("Wie kann ich Ihnen helfen?",),
        "form_start": (
            "Damit wir uns bei Ihnen melden können, nehme ich gern gleich Ihre Angaben auf.",
        ),
        "greeting_form_start": (
            "Womit kann ich Ihnen helfen? Gern nehme ich auch gleich Ihr Anliegen auf – {ask}",
        ),
        "hello_again": ("Hallo!", "Hallo, schön, dass Sie da sind!"),
        "back_to_form": ("Darf ich noch kurz nachfragen:", "Zurück zu Ihren Angaben:"),
        "ack": ("Danke!", "Vielen Dank, notiert.", "Danke, das habe ich notiert."),
        "ack_name": ("Freut mich, {name}!", "Danke, {name}!"),
        "ack_correction": ("Alles klar, ich habe die Korrektur übernommen – {label}: {value}.",),
        "ack_unchanged": ("Das hatte ich schon so notiert.",),
        "invalid_intro": ("„{raw}“ kann ich leider nicht als {label} übernehmen.",),
        "not_understood": (
            "Entschuldigung, das habe ich nicht ganz verstanden.",
            "Verzeihung, das habe ich leider nicht verstanden.",
        ),
        "hint_email": ("Bitte geben Sie eine gültige E-Mail-Adresse an, z. B. name@beispiel.de.",),
        "hint_phone": (
            "Bitte geben Sie eine vollständige Telefonnummer mit Vorwahl an, z. B. {example}.",
        ),
        "hint_number": ("Bitte geben Sie eine Zahl an, z. B. 2.",),
        "hint_date": (
            "Bitte nennen Sie ein Datum, z. B. „15.04.“, „morgen“ oder „nächsten Dienstag“.",
        ),
        "hint_choice": ("Bitte wählen Sie eine der Möglichkeiten: {options}.",),
        "hint_boolean": ("Bitte antworten Sie einfach mit Ja oder Nein.",),
        "hint_text": ("Bitte ergänzen Sie noch: {label}.",),
        "ask_text": ("Wie lautet {your} {label}?",),
        "ask_number": ("Was darf ich bei „{label}“ eintragen? Eine Zahl genügt.",),
        "ask_date": (
            "Welches Datum darf ich bei „{label}“ eintragen? "
            "Gern auch „morgen“ oder „nächsten Dienstag“.",
        ),
        "ask_choice": ("Was darf ich bei „{label}“ eintragen: {options}?",),
        "ask_boolean": ("Trifft „{label}“ auf Sie zu?",),
        "summary": (
            "Vielen Dank, ich habe alles notiert: {summary}. "
            "Unser Team meldet sich so bald wie möglich bei Ihnen.",
        ),
        "optional_offer": ("Wenn Sie mögen, gern noch eine freiwillige Angabe: {ask}",),
        "anything_else": ("Kann ich sonst noch etwas für Sie tun?",),
        "decline_optional": ("Alles klar, kein Problem.",),
        "decline_required": (
            "Kein Problem. Die Angabe hilft unserem Team allerdings, sich bei Ihnen zu melden – "
            "Sie können sie mir jederzeit nachreichen.",
        ),
        "affirm_open": ("Gern – was möchten Sie wissen?",),
        "hours": ("Unsere Öffnungszeiten: {hours}.",),
        "open_now": ("Gerade haben wir geöffnet.",),
        "closed_now": ("Im Moment haben wir geschlossen – wir sind {next} wieder für Sie da.",),
        "closed_now_unknown": ("Im Moment haben wir geschlossen.",),
        "hours_unknown": (
            "Die genauen Öffnungszeiten liegen mir leider nicht vor. "
            "Ich gebe Ihre Frage gern an unser Team weiter.",
        ),
        "out_of_hours_default": (
            "Unser Team ist gerade nicht im Haus, ich nehme Ihr Anliegen aber gern auf.",
        ),
        "price": ("Zu unseren Preisen: {price_info}",),
        "price_unknown": (
            "Zu den Preisen kann ich Ihnen leider nichts Verbindliches sagen. "
            "Ich gebe Ihre Frage gern an unser Team weiter, das sich dazu bei Ihnen meldet.",
        ),
        "unknown_question": (
            "Das kann ich Ihnen leider noch nicht sicher beantworten. Ich gebe Ihre Frage "
            "aber gern an unser Team weiter, das sich bei Ihnen meldet.",
        ),
        "booking_wish_noted": (
            "Gern – Termine vergibt unser Team selbst. Ich gebe Ihren Terminwunsch weiter, "
            "und wir melden uns bei Ihnen.",
        ),
        "statement_noted": (
            "Verstanden – das gebe ich gern an unser Team weiter.",
            "Alles klar, das notiere ich für unser Team.",
        ),
        "thanks_reply": ("Gern geschehen!", "Sehr gern!"),
        "farewell": ("Vielen Dank{name} – einen schönen Tag noch! Auf Wiedersehen.",),
        "farewell_thanked": ("Sehr gern{name}! Einen schönen Tag noch und auf Wiedersehen.",),
        "farewell_incomplete": (
            "Wenn Sie möchten, dass wir uns bei Ihnen melden, schreiben Sie mir einfach wieder.",
        ),
        "handoff": (
            "Sehr gern verbinde ich Sie mit jemandem aus unserem Team. "
            "Einen kleinen Moment bitte – es meldet sich gleich jemand hier im Chat.",
        ),
        "handoff_closed": (
            "Sehr gern gebe ich Sie an unser Team weiter. Gerade ist allerdings niemand im "
            "Haus – wir melden uns {next} bei Ihnen.",
        ),
        "handoff_closed_unknown": (
            "Sehr gern gebe ich Sie an unser Team weiter. Gerade ist allerdings niemand im "
            "Haus – wir melden uns so bald wie möglich bei Ihnen.",
        ),
        "handoff_not_understood": (
            "Damit Ihnen richtig geholfen wird, verbinde ich Sie mit jemandem aus unserem Team.",
        ),
        "handoff_unavailable": (
            "Ich gebe Ihr Anliegen gern an unser Team weiter, damit sich jemand persönlich "
            "bei Ihnen meldet.",
        ),
        "yes": ("Ja",),
        "no": ("Nein",),
        "or": ("oder",),
        "and": ("und",),
        "to": ("bis",),
        "today": ("heute",),
        "tomorrow": ("morgen",),
        "next_today": ("heute ab {time}",),
        "next_tomorrow": ("morgen ab {time}",),
        "next_weekday": ("am {weekday} ab {time}",),
        "next_date": ("am {date} ab {time}",),
        "kb_unknown": (
            "Dazu finde ich in unseren Unterlagen leider keine sichere Antwort. Ich gebe Ihre "
            "Frage aber gern an unser Team weiter, das sich bei Ihnen meldet.",
        ),
        "booking_contact": (
            "Gern! Damit ich den Termin für Sie eintragen kann, brauche ich Ihren Namen und "
            "Ihre E-Mail-Adresse oder Telefonnummer.",
        ),
        "booking_contact_reach": (
            "Gern! Damit ich den Termin für Sie eintragen kann, brauche ich noch Ihre "
            "E-Mail-Adresse oder Telefonnummer.",
        ),
        "booking_dropped": ("Alles klar, dann trage ich keinen Termin ein.",),
        "booking_when": (
            "Wann würde es Ihnen passen? Zum Beispiel „morgen Nachmittag“ oder "
            "„nächsten Dienstag um 10“.",
        ),
        "reschedule_when": ("Gern. Wann würde es Ihnen statt {when} besser passen?",),
        "slots_offer": ("Folgende Termine sind frei: {slots}. Welcher passt Ihnen?",),
        "slots_offer_one": ("Frei ist noch {slots}. Passt Ihnen das?",),
        "slots_more": ("Weitere freie Termine: {slots}. Passt einer davon?",),
        "slots_later": ("Später am Tag ist noch frei: {slots}. Passt einer davon?",),
        "slots_wider": (
            "Zu Ihrem Wunschtermin ist leider nichts frei. Die nächsten freien Termine: "
            "{slots}. Passt einer davon?",
        ),
        "slots_none": (
            "Dafür habe ich leider keinen freien Termin gefunden. Welcher andere Tag würde "
            "Ihnen passen?",
        ),
        "slots_no_more": (
            "Weitere freie Termine habe ich in diesem Zeitraum leider nicht. Nennen Sie mir gern "
            "einen anderen Tag.",
        ),
        "slots_no_later": (
            "Später an diesem Tag ist leider nichts mehr frei. Nennen Sie mir gern einen anderen "
            "Tag.",
        ),
        "slots_failed": (
            "Den Kalender kann ich gerade leider nicht abrufen. Ich gebe Ihren Terminwunsch gern "
            "an unser Team weiter, das sich bei Ihnen meldet.",
        ),
        "slots_which": (
            "Welcher Termin passt Ihnen? Schreiben Sie z. B. „den zweiten“ oder „um 11“ – oder "
            "„keiner passt“.",
        ),
        "none_fit": ("Keiner passt",),
        "booking_confirm": ("Soll ich den Termin am {when} für Sie buchen?",),
        "reschedule_confirm": ("Soll ich Ihren Termin auf {when} verschieben?",),
        "booking_declined": ("Kein Problem.",),
        "booked": ("Ihr Termin ist gebucht: {when}.",),
        "booked_email": ("Eine Bestätigung schicken wir Ihnen per E-Mail.",),
        "manage_link": ("Hier können Sie den Termin verschieben oder absagen: {url}",),
        "rescheduled": ("Erledigt – Ihr Termin ist jetzt am {when}.",),
        "slot_taken": ("Dieser Termin ist leider gerade vergeben worden.",),
        "booking_failed": (
            "Das Eintragen hat leider nicht geklappt. Ich gebe Ihren Terminwunsch gern an unser "
            "Team weiter, das sich bei Ihnen meldet.",
        ),
        "cancel_confirm": ("Soll ich Ihren Termin am {when} absagen?",),
        "cancelled": ("Ihr Termin am {when} ist abgesagt.",),
        "cancel_kept": ("Gut, Ihr Termin bleibt bestehen.",),
        "cancel_failed": (
            "Das Absagen hat leider nicht geklappt. Sie können den Termin auch über den Link in "
            "Ihrer Bestätigung absagen.",
        ),
        "at_time": ("{day} um {time}",),
    },
    "en": {
        "greeting": ("Welcome to {business}! I'm {persona} and I'm happy to help.",),
        "greeting_nobusiness": ("Hello! I'm {persona} and I'm happy to help.",),
        "how_can_i_help": ("How can I help you?",),
        "form_start": ("So that we can get back to you, I'd be glad to take down your details.",),
        "greeting_form_start": (
            "How can I help you today? I can also take down your request right away – {ask}",
        ),
        "hello_again": ("Hello!", "Hi, nice to have you here!"),
        "back_to_form": ("May I just ask:", "Back to your details:"),
        "ack": ("Thank you!", "Thanks, noted.", "Got it, thank you."),
        "ack_name": ("Nice to meet you, {name}!", "Thank you, {name}!"),
        "ack_correction": ("Got it, I've updated your {label} to {value}.",),
        "ack_unchanged": ("That's what I already have.",),
        "invalid_intro": ("I'm afraid I can't use “{raw}” as your {label}.",),
        "not_understood": (
            "Sorry, I didn't quite understand that.",
            "I'm sorry, I didn't understand that.",
        ),
        "hint_email": ("Please enter a valid e-mail address, e.g. name@example.com.",),
        "hint_phone": ("Please enter a complete phone number with area code, e.g. {example}.",),
        "hint_number": ("Please enter a number, e.g. 2.",),
        "hint_date": ("Please give a date, e.g. “15 April”, “tomorrow” or “next Tuesday”.",),
        "hint_choice": ("Please choose one of: {options}.",),
        "hint_boolean": ("Just answer yes or no, please.",),
        "hint_text": ("Please tell me your {label}.",),
        "ask_text": ("What is your {label}?",),
        "ask_number": ("What should I note for “{label}”? A number is fine.",),
        "ask_date": (
            "Which date should I note for “{label}”? “Tomorrow” or “next Tuesday” is fine too.",
        ),
        "ask_choice": ("What should I note for “{label}”: {options}?",),
        "ask_boolean": ("Does “{label}” apply to you?",),
        "summary": (
            "Thank you, I've noted everything: {summary}. "
            "Our team will get back to you as soon as possible.",
        ),
        "optional_offer": ("If you like, one optional detail: {ask}",),
        "anything_else": ("Is there anything else I can do for you?",),
        "decline_optional": ("No problem at all.",),
        "decline_required": (
            "No problem. It does help our team to get back to you, though – "
            "you can give it to me at any time.",
        ),
        "affirm_open": ("Sure – what would you like to know?",),
        "hours": ("Our opening hours: {hours}.",),
        "open_now": ("We're open right now.",),
        "closed_now": ("We're closed at the moment – we'll be back {next}.",),
        "closed_now_unknown": ("We're closed at the moment.",),
        "hours_unknown": (
            "I'm afraid I don't have our exact opening hours. "
            "I'll gladly pass your question on to our team.",
        ),
        "out_of_hours_default": (
            "Our team is out of the office right now, but I'm happy to take down your request.",
        ),
        "price": ("About our prices: {price_info}",),
        "price_unknown": (
            "I'm afraid I can't give you a binding answer on prices. "
            "I'll pass your question on to our team, who will get back to you about it.",
        ),
        "unknown_question": (
            "I'm afraid I can't answer that reliably yet, but I'll pass your question on "
            "to our team so they can get back to you.",
        ),
        "booking_wish_noted": (
            "Happy to help – our team arranges appointments itself. I'll pass your request on "
            "and we'll get back to you.",
        ),
        "statement_noted": (
            "Understood – I'll pass that on to our team.",
            "All right, I'll note that for our team.",
        ),
        "thanks_reply": ("You're welcome!", "My pleasure!"),
        "farewell": ("Thank you{name} – have a lovely day! Goodbye.",),
        "farewell_thanked": ("You're very welcome{name}! Have a lovely day – goodbye.",),
        "farewell_incomplete": ("If you'd like us to get back to you, just write to me again.",),
        "handoff": (
            "Of course – I'll connect you with someone from our team. "
            "Just a moment, please; someone will reply here in the chat.",
        ),
        "handoff_closed": (
            "Of course – I'll pass you on to our team. Nobody is in the office right now, "
            "though; we'll get back to you {next}.",
        ),
        "handoff_closed_unknown": (
            "Of course – I'll pass you on to our team. Nobody is in the office right now, "
            "though; we'll get back to you as soon as possible.",
        ),
        "handoff_not_understood": (
            "To make sure you get the right help, I'll connect you with someone from our team.",
        ),
        "handoff_unavailable": (
            "I'll gladly pass your request on to our team so that someone gets back to you "
            "in person.",
        ),
        "yes": ("Yes",),
        "no": ("No",),
        "or": ("or",),
        "and": ("and",),
        "to": ("to",),
        "today": ("today",),
        "tomorrow": ("tomorrow",),
        "next_today": ("today from {time}",),
        "next_tomorrow": ("tomorrow from {time}",),
        "next_weekday": ("on {weekday} from {time}",),
        "next_date": ("on {date} from {time}",),
        "kb_unknown": (
            "I'm afraid I can't find a reliable answer to that in our information, but I'll "
            "pass your question on to our team so they can get back to you.",
        ),
        "booking_contact": (
            "Happy to! To book the appointment for you I need your name and your e-mail "
            "address or phone number.",
        ),
        "booking_contact_reach": (
            "Happy to! To book the appointment for you I still need your e-mail address or "
            "phone number.",
        ),
        "booking_dropped": ("All right, I won't book anything then.",),
        "booking_when": (
            "When would suit you? For example “tomorrow afternoon” or “next Tuesday at 10”.",
        ),
        "reschedule_when": ("Sure. When would suit you better than {when}?",),
        "slots_offer": ("These times are free: {slots}. Which one suits you?",),
        "slots_offer_one": ("{slots} is still free. Does that suit you?",),
        "slots_more": ("More free times: {slots}. Does one of these suit you?",),
        "slots_later": ("Later that day I still have: {slots}. Does one of these suit you?",),
        "slots_wider": (
            "Nothing is free at the time you asked for, I'm afraid. The next free times: "
            "{slots}. Does one of these suit you?",
        ),
        "slots_none": (
            "I'm afraid I couldn't find a free time for that. Which other day would suit you?",
        ),
        "slots_no_more": (
            "I'm afraid there are no more free times in that period. Just name another day.",
        ),
        "slots_no_later": (
            "I'm afraid nothing else is free later that day. Just name another day.",
        ),
        "slots_failed": (
            "I can't reach the calendar right now, I'm afraid. I'll pass your request on to "
            "our team so they can get back to you.",
        ),
        "slots_which": (
            "Which time suits you? You can say e.g. “the second one” or “at 11” – or “none of "
            "these fit”.",
        ),
        "none_fit": ("None of these fit",),
        "booking_confirm": ("Shall I book {when} for you?",),
        "reschedule_confirm": ("Shall I move your appointment to {when}?",),
        "booking_declined": ("No problem.",),
        "booked": ("Your appointment is booked: {when}.",),
        "booked_email": ("We'll send you a confirmation by e-mail.",),
        "manage_link": ("You can reschedule or cancel it here: {url}",),
        "rescheduled": ("Done – your appointment is now on {when}.",),
        "slot_taken": ("I'm sorry, that time has just been taken.",),
        "booking_failed": (
            "I'm afraid the booking didn't go through. I'll pass your request on to our team "
            "so they can get back to you.",
        ),
        "cancel_confirm": ("Shall I cancel your appointment on {when}?",),
        "cancelled": ("Your appointment on {when} is cancelled.",),
        "cancel_kept": ("All right, your appointment stays as it is.",),
        "cancel_failed": (
            "I'm afraid cancelling didn't work. You can also cancel with the link in your "
            "confirmation.",
        ),
        "at_time": ("{day} at {time}",),
    },
}

WEEKDAYS = {
    "de": ("Montag", "Dienstag", "Mittwoch", "Donnerstag", "Freitag", "Samstag", "Sonntag"),
    "en": ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"),
}
WEEKDAYS_SHORT = {
    "de": ("Mo", "Di", "Mi", "Do", "Fr", "Sa", "So"),
    "en": ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"),
}
MONTHS_EN = (
    "January", "February", "March", "April", "May", "June", "July", "August", "September",
    "October", "November", "December",
)  # fmt: skip

# Noun endings that are (almost always) feminine in German: "Ihre Telefonnummer".
_FEMININE_ENDINGS = (
    "nummer", "adresse", "mail", "ung", "heit", "keit", "schaft", "ion", "tät", "tat", "zahl",
    "zeit", "art", "ik", "firma", "branche", "stadt", "straße", "strasse", "anrede", "frage",
    "nachricht", "größe", "grosse", "versicherung", "kasse", "praxis", "plz", "website",
    "webseite", "homepage",
)  # fmt: skip
_NOT_FEMININE = ("name", "ende", "interesse", "gebäude", "kunde", "wunsch", "termin")


def language_of(code: str) -> str:
    return "de" if (code or "").lower().startswith("de") else "en"


def say(lang: str, key: str, seed: int = 0, **values: object) -> str:
    variants = PHRASES[lang][key]
    return variants[seed % len(variants)].format(**values)


def label_of(item: QualificationField, lang: str) -> str:
    return item.label(lang) or item.key


def _your_de(label: str) -> str:
    last = label.replace("-", " ").split()[-1].lower() if label.split() else ""
    if last.endswith(_NOT_FEMININE):
        return "Ihr"
    return "Ihre" if last.endswith(_FEMININE_ENDINGS) else "Ihr"


def _inline_label(label: str, lang: str) -> str:
    """English mid-sentence label: "Email" -> "email", but "IBAN" stays."""
    if lang == "en" and len(label) > 1 and label[0].isupper() and label[1].islower():
        return label[0].lower() + label[1:]
    return label


def join_options(options: tuple[str, ...] | list[str], lang: str, word: str = "or") -> str:
    options = list(options)
    if len(options) <= 1:
        return "".join(options)
    return f"{', '.join(options[:-1])} {say(lang, word)} {options[-1]}"


def ask_field(item: QualificationField, lang: str) -> str:
    label = label_of(item, lang)
    if item.type == "number":
        return say(lang, "ask_number", label=label)
    if item.type == "date":
        return say(lang, "ask_date", label=label)
    if item.type == "choice":
        return say(lang, "ask_choice", label=label, options=join_options(item.options, lang))
    if item.type == "boolean":
        if label.rstrip().endswith("?"):
            return label.strip()
        return say(lang, "ask_boolean", label=label)
    your = _your_de(label) if lang == "de" else "your"
    return say(lang, "ask_text", your=your, label=_inline_label(label, lang))


def field_phrase(item: QualificationField, lang: str) -> str:
    """The label as used inside a sentence ("Ihre Telefonnummer", "your phone number")."""
    label = label_of(item, lang)
    if lang == "de":
        return f"{_your_de(label)} {label}"
    return _inline_label(label, lang)


def lower_first(sentence: str) -> str:
    """For a question continuing a sentence: "Wie lautet ..." -> "wie lautet ..."."""
    if len(sentence) > 1 and sentence[0].isupper() and sentence[1].islower():
        return sentence[0].lower() + sentence[1:]
    return sentence


def format_time(value: time, lang: str) -> str:
    if lang == "de":
        return f"{value.hour}:{value.minute:02d} Uhr"
    suffix = "am" if value.hour < 12 else "pm"
    hour = value.hour % 12 or 12
    return f"{hour}:{value.minute:02d} {suffix}"


def format_range(opens: time, closes: time, lang: str) -> str:
    if lang == "de":
        return f"{opens.hour}:{opens.minute:02d}–{format_time(closes, lang)}"
    return f"{format_time(opens, lang)}–{format_time(closes, lang)}"


def format_date(value: date, lang: str) -> str:
    if lang == "de":
        return value.strftime("%d.%m.%Y")
    return f"{value.day} {MONTHS_EN[value.month - 1]} {value.year}"


def format_moment(value: datetime, lang: str) -> str:
    """A slot in a sentence: "Donnerstag, 13.03.2025 um 14:00 Uhr", "Thursday, 13 March 2025
    at 2:00 pm"."""
    day = f"{WEEKDAYS[lang][value.weekday()]}, {format_date(value.date(), lang)}"
    return say(lang, "at_time", day=day, time=format_time(value.time(), lang))


def slot_label(value: datetime, lang: str) -> str:
    """A slot as a quick reply: "Do 13.03. um 14:00 Uhr", "Thu 13 Mar at 2:00 pm"."""
    weekday = WEEKDAYS_SHORT[lang][value.weekday()]
    if lang == "de":
        day = f"{weekday} {value.day:02d}.{value.month:02d}."
    else:
        day = f"{weekday} {value.day} {MONTHS_EN[value.month - 1][:3]}"
    return say(lang, "at_time", day=day, time=format_time(value.time(), lang))
