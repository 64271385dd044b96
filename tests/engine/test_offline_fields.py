"""The qualification form with every field type: validation, normalisation, quick replies,
optional fields offered once, and declining a field."""

from __future__ import annotations

from demandly.engine.providers.base import QualificationField as Field
from tests.engine.offline_dialogue import INSIDE, Dialogue, practice

BOOKING = (
    Field(key="name", labels={"de": "Name", "en": "Name"}),
    Field(
        key="treatment",
        labels={"de": "Behandlung", "en": "Treatment"},
        type="choice",
        options=("Kontrolle", "Zahnreinigung", "Implantat"),
    ),
    Field(key="date", labels={"de": "Wunschtermin", "en": "Preferred date"}, type="date"),
    Field(key="persons", labels={"de": "Anzahl Personen", "en": "Number of people"}, type="number"),
    Field(
        key="insured",
        labels={"de": "Sind Sie privat versichert?", "en": "Are you privately insured?"},
        type="boolean",
    ),
    Field(key="phone", labels={"de": "Telefonnummer", "en": "Phone"}, type="phone"),
    Field(key="message", labels={"de": "Anliegen", "en": "Message"}, required=False),
    Field(key="email", labels={"de": "E-Mail", "en": "Email"}, type="email", required=False),
)


def booking(language: str, **overrides: object) -> Dialogue:
    return Dialogue(practice(language, qualification=BOOKING, **overrides), clock=INSIDE)


async def test_german_booking_form_normalises_every_type() -> None:
    d = booking("de")
    await d.greet()
    turn = await d.say("Max Muster")
    assert "Behandlung" in turn.text
    assert turn.quick_replies == ("Kontrolle", "Zahnreinigung", "Implantat")

    turn = await d.say("Ich hätte gern eine Zahnreinigung")
    assert turn.saved == {"treatment": "Zahnreinigung"}
    assert "Wunschtermin" in turn.text

    # INSIDE is Wednesday 12 March 2025: "15.4." is this April, "nächsten Dienstag" the 18th.
    turn = await d.say("am 15.4.")
    assert turn.saved == {"date": "2025-04-15"}
    assert "Anzahl Personen" in turn.text

    turn = await d.say("zwei")
    assert turn.saved == {"persons": 2}
    assert "privat versichert" in turn.text
    assert turn.quick_replies == ("Ja", "Nein")

    turn = await d.say("Ja, bin ich")
    assert turn.saved == {"insured": True}
    assert "Telefonnummer" in turn.text

    turn = await d.say("030 1234567")
    assert turn.saved == {"phone": "+49301234567"}
    assert "15.04.2025" in turn.text, "the summary shows the date the German way"
    assert d.captured == {
        "name": "Max Muster",
        "treatment": "Zahnreinigung",
        "date": "2025-04-15",
        "persons": 2,
        "insured": True,
        "phone": "+49301234567",
    }


async def test_english_booking_form_normalises_every_type() -> None:
    d = booking("en")
    await d.greet()
    await d.say("Jane")
    turn = await d.say("2")
    assert turn.saved == {"treatment": "Zahnreinigung"}, "a number picks the option"
    turn = await d.say("next friday")
    assert turn.saved == {"date": "2025-03-14"}
    turn = await d.say("3 people")
    assert turn.saved == {"persons": 3}
    turn = await d.say("no")
    assert turn.saved == {"insured": False}
    assert turn.quick_replies == ()
    turn = await d.say("+1 415 555 0132")
    assert turn.saved == {"phone": "+14155550132"}


async def test_many_answers_in_one_message_fill_several_types() -> None:
    d = booking("de")
    await d.greet()
    turn = await d.say(
        "Hallo, ich bin Eva Schmidt und möchte nächsten Dienstag eine Kontrolle "
        "für 2 Personen, Telefon 0151 23456789"
    )
    assert turn.saved == {
        "name": "Eva Schmidt",
        "treatment": "Kontrolle",
        "date": "2025-03-18",
        "persons": 2,
        "phone": "+4915123456789",
    }
    assert "privat versichert" in turn.text, "only the missing field is asked"


async def test_invalid_choice_number_date_and_boolean_are_asked_again_with_a_hint() -> None:
    d = booking("en")
    await d.greet()
    await d.say("Jane")
    turn = await d.say("blah")
    assert turn.calls == []
    assert "Kontrolle, Zahnreinigung or Implantat" in turn.text
    assert turn.quick_replies == ("Kontrolle", "Zahnreinigung", "Implantat")
    await d.say("Implantat")

    turn = await d.say("31.02.")
    assert turn.calls == [] and "date" in turn.text.lower()
    await d.say("tomorrow")

    turn = await d.say("many")
    assert turn.calls == [] and "number" in turn.text.lower()
    await d.say("4")

    turn = await d.say("perhaps")
    assert turn.calls == [] and "yes or no" in turn.text.lower()
    assert turn.quick_replies == ("Yes", "No")


async def test_a_short_phone_number_is_refused_with_an_example() -> None:
    d = Dialogue(practice("de"))
    await d.greet()
    await d.say("Max Muster")
    await d.say("max@example.com")
    turn = await d.say("123")
    assert turn.calls == []
    assert "123" in turn.text and "Vorwahl" in turn.text and "01512 3456789" in turn.text


async def test_the_field_hint_replaces_the_generic_one() -> None:
    fields = (
        Field(
            key="email",
            labels={"de": "E-Mail"},
            type="email",
            hint="Wir schicken Ihnen die Terminbestätigung an diese Adresse.",
        ),
    )
    d = Dialogue(practice("de", qualification=fields))
    await d.greet()
    turn = await d.say("max@example")
    assert "Terminbestätigung" in turn.text
    assert "name@beispiel.de" not in turn.text


async def test_optional_fields_are_offered_once_after_the_summary() -> None:
    d = booking("de")
    await d.greet()
    for answer in ("Max Muster", "Kontrolle", "morgen", "1", "nein"):
        await d.say(answer)
    summary = await d.say("0171 1234567")
    assert "Unser Team meldet sich" in summary.text
    assert "freiwillig" in summary.text and "Anliegen" in summary.text

    turn = await d.say("Ich habe seit gestern Zahnschmerzen")
    assert turn.saved == {"message": "Ich habe seit gestern Zahnschmerzen"}
    assert "E-Mail" in turn.text

    turn = await d.say("nein danke")
    assert turn.calls == []
    assert "Kann ich sonst noch etwas für Sie tun?" in turn.text
    assert "E-Mail" not in turn.text

    turn = await d.say("Haben Sie Parkplätze?")
    assert "Parkplätze" in turn.text
    assert "E-Mail" not in turn.text and "Anliegen" not in turn.text, "offered only once"


async def test_declining_a_required_field_moves_on() -> None:
    d = Dialogue(practice("de"))
    await d.greet()
    await d.say("Max Muster")
    turn = await d.say("Ich habe keine E-Mail")
    assert turn.calls == []
    assert "Telefonnummer" in turn.text
    turn = await d.say("0171 1234567")
    assert turn.saved == {"phone": "+491711234567"}
    assert "Unser Team meldet sich" in turn.text


async def test_phone_numbers_use_the_agent_region() -> None:
    d = Dialogue(practice("de", phone_region="AT", timezone="Europe/Vienna"))
    await d.greet()
    turn = await d.say("Ich bin Anna Huber, 0664 1234567")
    assert turn.saved == {"name": "Anna Huber", "phone": "+436641234567"}


async def test_two_fields_of_one_type_are_told_apart_by_keywords() -> None:
    fields = (
        Field(key="mobile", labels={"de": "Handynummer"}, type="phone"),
        Field(key="landline", labels={"de": "Festnetznummer"}, type="phone"),
    )
    d = Dialogue(practice("de", qualification=fields))
    await d.greet()
    turn = await d.say("Festnetz 030 1234567, Handy 0171 1234567")
    assert turn.saved == {"landline": "+49301234567", "mobile": "+491711234567"}


async def test_an_open_question_lands_in_a_concern_field() -> None:
    fields = (
        Field(key="name", labels={"en": "Name"}),
        Field(key="message", labels={"en": "Your message"}),
    )
    d = Dialogue(practice("en", qualification=fields))
    await d.greet()
    await d.say("Jane Doe")
    turn = await d.say("Can I bring my dog to the appointment?")
    assert turn.saved == {"message": "Can I bring my dog to the appointment?"}
    assert "pass your question on" in turn.text


async def test_a_day_mentioned_in_passing_is_not_taken_for_the_date() -> None:
    d = booking("de")
    await d.greet()
    turn = await d.say("Ich bin Max Muster und habe seit heute Zahnschmerzen")
    assert turn.saved == {"name": "Max Muster"}
    turn = await d.say("Kontrolle, am liebsten am Freitag")
    assert turn.saved == {"treatment": "Kontrolle", "date": "2025-03-14"}
