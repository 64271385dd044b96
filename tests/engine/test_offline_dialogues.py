"""Whole dialogues with the offline engine, in German and in English, driven like the turn loop
drives it: each reply (with its tool calls and their results) goes back into the history."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from tests.engine.offline_dialogue import INSIDE, OUTSIDE, Dialogue, practice


@dataclass(frozen=True)
class Script:
    """What a visitor types, and the words the agent's replies must contain, per language."""

    language: str
    name_label: str
    email_label: str
    phone_label: str
    hello: str
    name: str
    bad_email: str
    email_hint: str
    good_email: str
    phone: str
    all_at_once: str
    phone_correction: str
    email_correction: str
    ask_person: str
    unknown_question: str
    pass_on: str
    faq_question: str
    faq_answer: str
    hours_question: str
    monday: str
    open_now: str
    closed_now: str
    goodbye: str
    farewell: str
    summary_team: str
    out_of_hours: str


DE = Script(
    language="de",
    name_label="Name",
    email_label="E-Mail-Adresse",
    phone_label="Telefonnummer",
    hello="Hallo",
    name="Max Muster",
    bad_email="max@example",
    email_hint="gültige E-Mail-Adresse",
    good_email="Max.Muster@Example.com",
    phone="0171 1234567",
    all_at_once="Ich bin Max Muster, max@example.com, 0171 1234567",
    phone_correction="Oh, meine Nummer ist eigentlich 0171 7654321",
    email_correction="Sorry, meine E-Mail ist eigentlich max.muster@example.org",
    ask_person="Kann ich bitte mit einem Menschen sprechen?",
    unknown_question="Kann ich meinen Hund mitbringen?",
    pass_on="an unser Team weiter",
    faq_question="Nehmen Sie auch neue Patienten?",
    faq_answer="nehmen gern neue Patientinnen",
    hours_question="Wann haben Sie geöffnet?",
    monday="Montag",
    open_now="Gerade haben wir geöffnet",
    closed_now="am Montag ab 8:00 Uhr",
    goodbye="Danke, tschüss!",
    farewell="Auf Wiedersehen",
    summary_team="Unser Team meldet sich",
    out_of_hours="Wir sind gerade nicht in der Praxis.",
)

EN = Script(
    language="en",
    name_label="name",
    email_label="email",
    phone_label="phone number",
    hello="Hello",
    name="Jane Doe",
    bad_email="jane@example",
    email_hint="valid e-mail address",
    good_email="Jane.Doe@Example.com",
    phone="+44 20 7946 0958",
    all_at_once="Hi, I'm Jane Doe, jane@example.com, 0171 1234567",
    phone_correction="Actually my number is 0171 7654321",
    email_correction="sorry, my email is actually jane.doe@example.org",
    ask_person="Can I talk to a human, please?",
    unknown_question="Can I bring my dog?",
    pass_on="pass your question on to our team",
    faq_question="Do you accept new patients?",
    faq_answer="happy to welcome new patients",
    hours_question="What are your opening hours?",
    monday="Monday",
    open_now="We're open right now",
    closed_now="on Monday from 8:00 am",
    goodbye="Thanks, bye!",
    farewell="Goodbye",
    summary_team="Our team will get back to you",
    out_of_hours="We are out of the practice right now.",
)

SCRIPTS = pytest.mark.parametrize("s", [DE, EN], ids=["de", "en"])


def asks_for(text: str, label: str) -> bool:
    """The reply ends by asking for this field."""
    last_sentence = text.rstrip().rsplit(".", 1)[-1].rsplit("!", 1)[-1]
    return label.lower() in last_sentence.lower() and text.rstrip().endswith("?")


@SCRIPTS
async def test_full_qualification_with_an_invalid_then_a_valid_email(s: Script) -> None:
    d = Dialogue(practice(s.language))
    greeting = await d.greet()
    assert "Lena" in greeting.text and "Zahnarztpraxis Dr. Sonnenschein" in greeting.text
    assert asks_for(greeting.text, s.name_label)
    assert greeting.calls == []

    turn = await d.say(s.name)
    assert turn.saved == {"name": s.name}
    assert asks_for(turn.text, s.email_label)

    turn = await d.say(s.bad_email)
    assert turn.calls == [], "an invalid address is not saved"
    assert s.bad_email in turn.text and s.email_hint in turn.text

    turn = await d.say(s.good_email)
    assert turn.saved == {"email": s.good_email.lower()}
    assert asks_for(turn.text, s.phone_label)

    turn = await d.say(s.phone)
    expected_phone = "+491711234567" if s.language == "de" else "+442079460958"
    assert turn.saved == {"phone": expected_phone}
    # The summary repeats what was noted and says the team will get back.
    assert s.name in turn.text and s.good_email.lower() in turn.text
    assert s.summary_team in turn.text
    assert d.captured == {"name": s.name, "email": s.good_email.lower(), "phone": expected_phone}


@SCRIPTS
async def test_several_answers_in_one_message(s: Script) -> None:
    d = Dialogue(practice(s.language))
    await d.greet()
    turn = await d.say(s.all_at_once)
    assert turn.saved == {
        "name": s.name,
        "email": "max@example.com" if s.language == "de" else "jane@example.com",
        "phone": "+491711234567",
    }
    assert s.summary_team in turn.text
    assert not asks_for(turn.text, s.name_label)


@SCRIPTS
async def test_a_correction_replaces_the_earlier_value(s: Script) -> None:
    d = Dialogue(practice(s.language))
    await d.greet()
    await d.say(s.all_at_once)

    turn = await d.say(s.phone_correction)
    assert turn.saved == {"phone": "+491717654321"}
    assert "+49 171 7654321" in turn.text

    turn = await d.say(s.email_correction)
    corrected = s.email_correction.rsplit(" ", 1)[-1]
    assert turn.saved == {"email": corrected}
    assert d.captured["phone"] == "+491717654321"
    assert d.captured["email"] == corrected
    assert d.captured["name"] == s.name


@SCRIPTS
async def test_a_correction_in_the_middle_of_the_form(s: Script) -> None:
    d = Dialogue(practice(s.language))
    await d.greet()
    await d.say(s.name)
    await d.say(s.good_email)
    turn = await d.say(s.email_correction)
    assert turn.saved == {"email": s.email_correction.rsplit(" ", 1)[-1]}
    assert asks_for(turn.text, s.phone_label), "the form goes on after the correction"


@SCRIPTS
async def test_asking_for_a_person_hands_off(s: Script) -> None:
    d = Dialogue(practice(s.language))
    await d.greet()
    await d.say(s.name)
    turn = await d.say(s.ask_person)
    handoff = turn.call("request_handoff")
    assert handoff is not None and handoff.arguments["reason"]
    assert turn.call("end_conversation") is None
    assert not asks_for(turn.text, s.email_label), "no more form questions once handed off"


@SCRIPTS
async def test_asking_for_a_person_outside_hours_says_when_the_team_is_back(s: Script) -> None:
    d = Dialogue(practice(s.language), clock=OUTSIDE)
    turn = await d.say(s.ask_person)
    assert turn.call("request_handoff") is not None
    assert s.closed_now in turn.text


@SCRIPTS
async def test_an_unknown_question_is_passed_on_and_the_form_goes_on(s: Script) -> None:
    d = Dialogue(practice(s.language))
    await d.greet()
    await d.say(s.name)
    turn = await d.say(s.unknown_question)
    assert s.pass_on in turn.text
    assert asks_for(turn.text, s.email_label)
    assert turn.calls == []
    # Nothing is made up: the reply contains none of the FAQ answers.
    assert all(pair.answer not in turn.text for pair in d.context.faq)


@SCRIPTS
async def test_an_faq_question_mid_form_is_answered_and_the_form_resumes(s: Script) -> None:
    d = Dialogue(practice(s.language))
    await d.greet()
    await d.say(s.name)
    turn = await d.say(s.faq_question)
    assert s.faq_answer in turn.text
    assert asks_for(turn.text, s.email_label)
    assert turn.calls == [], "the question is not taken for an answer"

    turn = await d.say(s.good_email)
    assert turn.saved == {"email": s.good_email.lower()}


@SCRIPTS
async def test_opening_hours_inside_hours(s: Script) -> None:
    d = Dialogue(practice(s.language), clock=INSIDE)
    turn = await d.say(s.hours_question)
    assert s.monday in turn.text and "8:00" in turn.text
    assert s.open_now in turn.text


@SCRIPTS
async def test_opening_hours_outside_hours(s: Script) -> None:
    d = Dialogue(practice(s.language), clock=OUTSIDE)
    greeting = await d.greet()
    assert s.out_of_hours in greeting.text
    turn = await d.say(s.hours_question)
    assert s.open_now not in turn.text
    assert s.closed_now in turn.text


@SCRIPTS
async def test_inside_hours_the_greeting_has_no_out_of_hours_message(s: Script) -> None:
    greeting = await Dialogue(practice(s.language), clock=INSIDE).greet()
    assert s.out_of_hours not in greeting.text


@SCRIPTS
async def test_goodbye_after_the_form_ends_the_conversation(s: Script) -> None:
    d = Dialogue(practice(s.language))
    await d.greet()
    await d.say(s.all_at_once)
    turn = await d.say(s.goodbye)
    end = turn.call("end_conversation")
    assert end is not None and end.arguments["reason"]
    assert s.farewell.lower() in turn.text.lower()
    assert s.name in turn.text, "the farewell is personal"


@SCRIPTS
async def test_no_thanks_after_anything_else_ends_the_conversation(s: Script) -> None:
    d = Dialogue(practice(s.language))
    await d.greet()
    await d.say(s.all_at_once)
    turn = await d.say("Nein, danke" if s.language == "de" else "No, thanks")
    assert turn.call("end_conversation") is not None
    assert s.farewell.lower() in turn.text.lower()


@SCRIPTS
async def test_a_visitor_hello_first_gets_the_greeting(s: Script) -> None:
    d = Dialogue(practice(s.language))
    turn = await d.say(s.hello)
    assert "Lena" in turn.text and "Zahnarztpraxis Dr. Sonnenschein" in turn.text
    assert asks_for(turn.text, s.name_label)


@SCRIPTS
async def test_not_understanding_twice_in_a_row_hands_off(s: Script) -> None:
    d = Dialogue(practice(s.language, qualification=()))
    await d.greet()
    first = await d.say("hmm")
    assert first.calls == []
    second = await d.say("xyz")
    assert second.call("request_handoff") is not None


@SCRIPTS
async def test_price_questions(s: Script) -> None:
    question = "Was kostet eine Zahnreinigung?" if s.language == "de" else "How much is a cleaning?"
    d = Dialogue(practice(s.language, qualification=()))
    turn = await d.say(question)
    assert s.pass_on.split()[-1] in turn.text, "no price is invented"
    assert "€" not in turn.text and "EUR" not in turn.text

    priced = Dialogue(practice(s.language, qualification=(), price_info="Zahnreinigung: 89 EUR"))
    turn = await priced.say(question)
    assert "89 EUR" in turn.text


@SCRIPTS
async def test_thanks_gets_a_polite_reply_and_the_form_goes_on(s: Script) -> None:
    d = Dialogue(practice(s.language))
    await d.greet()
    await d.say(s.name)
    turn = await d.say("Danke!" if s.language == "de" else "Thanks!")
    assert turn.text.startswith(("Gern", "Sehr gern", "You're welcome", "My pleasure"))
    assert asks_for(turn.text, s.email_label)
    assert turn.call("end_conversation") is None


@pytest.mark.parametrize(
    ("language", "wish", "expected"),
    [
        ("de", "Hallo, ich hätte gern einen Termin.", "Ich gebe Ihren Terminwunsch weiter"),
        ("en", "Hi, I'd like to book an appointment.", "I'll pass your request on"),
    ],
)
async def test_an_appointment_wish_without_a_calendar_is_passed_on_not_ignored(
    language: str, wish: str, expected: str
) -> None:
    # An agent with neither booking tools nor a form once answered this with nothing at all.
    d = Dialogue(practice(language, qualification=(), faq=()))
    await d.greet()
    turn = await d.say(wish)
    assert expected in turn.text
