"""TwiML the voice webhooks answer, built with the SDK's ``VoiceResponse``, and the phone's own
phrases (re-prompts, consent question, goodbyes) in German and English.

``read`` turns a TwiML document back into what a caller would hear and what happens next: the
phone simulator answers with it, and tests follow the ``<Gather>`` action like Twilio does.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass, field

from twilio.twiml.voice_response import VoiceResponse

LANGUAGES = {"de": "de-DE", "en": "en-US"}

PHRASES: dict[str, dict[str, str]] = {
    "de": {
        "reprompt": "Sind Sie noch da? Sagen Sie mir gern, wie ich Ihnen helfen kann.",
        "silence_goodbye": "Ich höre Sie leider nicht. Rufen Sie gern noch einmal an. "
        "Auf Wiederhören!",
        "consent_question": "Wir würden dieses Gespräch gern aufzeichnen, um unseren Service "
        "zu verbessern. Sind Sie damit einverstanden? Sagen Sie Ja oder Nein, oder drücken "
        "Sie die 1 für Ja und die 2 für Nein.",
        "consent_yes": "Vielen Dank, das Gespräch wird aufgezeichnet.",
        "consent_no": "In Ordnung, das Gespräch wird nicht aufgezeichnet.",
        "transfer": "Einen Moment bitte, ich verbinde Sie.",
        "transfer_failed": "Leider konnte ich Sie nicht verbinden. Wir rufen Sie zurück. "
        "Auf Wiederhören!",
        "handoff_goodbye": "Ein Kollege meldet sich bei Ihnen. Auf Wiederhören!",
        "goodbye": "Auf Wiederhören!",
        "unavailable": "Diese Nummer ist zurzeit nicht erreichbar. Auf Wiederhören!",
        "voicemail": "Guten Tag, hier ist {business}. Wir melden uns später noch einmal.",
    },
    "en": {
        "reprompt": "Are you still there? Just tell me how I can help you.",
        "silence_goodbye": "I'm afraid I can't hear you. Please call again. Goodbye!",
        "consent_question": "We would like to record this call to improve our service. Do you "
        "agree? Say yes or no, or press 1 for yes and 2 for no.",
        "consent_yes": "Thank you, this call is being recorded.",
        "consent_no": "All right, this call will not be recorded.",
        "transfer": "One moment please, I'm putting you through.",
        "transfer_failed": "I'm sorry, I couldn't put you through. We'll call you back. Goodbye!",
        "handoff_goodbye": "A colleague will get back to you. Goodbye!",
        "goodbye": "Goodbye!",
        "unavailable": "This number is not available at the moment. Goodbye!",
        "voicemail": "Hello, this is {business}. We will call you again later.",
    },
}


def phrase(language: str, key: str, **values: str) -> str:
    return PHRASES.get(language, PHRASES["en"])[key].format(**values)


@dataclass(frozen=True)
class Voice:
    """How the call speaks: the agent's language and ``<Say>`` voice."""

    language: str
    say_voice: str | None = None

    @property
    def locale(self) -> str:
        return LANGUAGES.get(self.language, "en-US")


def _say(parent: VoiceResponse, voice: Voice, text: str) -> None:
    attributes = {"language": voice.locale}
    if voice.say_voice:
        attributes["voice"] = voice.say_voice
    parent.say(text, **attributes)


def gather(
    voice: Voice, texts: list[str], action: str, timeout: int, *, digits: int | None = None
) -> str:
    """Say ``texts`` and listen (speech or keys); Twilio posts what it heard, or nothing
    (``actionOnEmptyResult``), to ``action``."""
    response = VoiceResponse()
    options: dict[str, object] = {
        "input": "speech dtmf",
        "language": voice.locale,
        "speech_timeout": "auto",
        "timeout": timeout,
        "action": action,
        "method": "POST",
        "action_on_empty_result": True,
    }
    if digits is not None:
        options["num_digits"] = digits
    listening = response.gather(**options)
    for text in texts:
        if text:
            _say(listening, voice, text)
    return str(response)


def hang_up(voice: Voice, texts: list[str]) -> str:
    response = VoiceResponse()
    for text in texts:
        if text:
            _say(response, voice, text)
    response.hangup()
    return str(response)


def dial(voice: Voice, texts: list[str], number: str, caller_id: str | None, after: str) -> str:
    """Say ``texts`` and put the caller through; Twilio posts how the dial ended to ``after``."""
    response = VoiceResponse()
    for text in texts:
        if text:
            _say(response, voice, text)
    options: dict[str, object] = {"action": after, "method": "POST"}
    if caller_id:
        options["caller_id"] = caller_id
    response.dial(number, **options)
    return str(response)


def stream(voice: Voice, texts: list[str], url: str, parameters: dict[str, str]) -> str:
    """Realtime mode: say ``texts`` (the consent answer, if any), then connect the call's
    audio to our Media Streams socket."""
    response = VoiceResponse()
    for text in texts:
        if text:
            _say(response, voice, text)
    connect = response.connect()
    socket = connect.stream(url=url)
    for name, value in parameters.items():
        socket.parameter(name=name, value=value)
    return str(response)


def empty() -> str:
    return str(VoiceResponse())


@dataclass
class Heard:
    """A TwiML document as a caller experiences it."""

    says: list[str] = field(default_factory=list)
    action: str = "hangup"  # gather | hangup | dial | stream | none
    gather_url: str | None = None
    dial_number: str | None = None
    caller_id: str | None = None

    @property
    def text(self) -> str:
        return " ".join(self.says)


def read(twiml: str) -> Heard:
    """What the caller hears and what happens next, Twilio's way: verbs run in order, a
    ``<Gather>`` waits for input and posts it to its action."""
    heard = Heard(action="none")
    for verb in ET.fromstring(twiml):
        if verb.tag == "Say":
            heard.says.append(verb.text or "")
        elif verb.tag == "Gather":
            heard.says.extend(say.text or "" for say in verb if say.tag == "Say")
            heard.action, heard.gather_url = "gather", verb.get("action")
            return heard
        elif verb.tag == "Dial":
            heard.action, heard.dial_number = "dial", (verb.text or "").strip()
            heard.caller_id = verb.get("callerId")
            return heard
        elif verb.tag == "Connect":
            heard.action = "stream"
            return heard
        elif verb.tag == "Hangup":
            heard.action = "hangup"
            return heard
    return heard
