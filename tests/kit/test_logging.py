from __future__ import annotations

import json

import pytest

from demandly.kit.logging import configure_logging, get_logger, redact


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("mail anna.schmidt@example.de now", "mail [email] now"),
        ("call +49 171 1234567 please", "call [phone] please"),
        ("call 0171/1234567", "call [phone]"),
        ("order 42 of 2026-11-26", "order 42 of 2026-11-26"),
    ],
)
def test_redact(raw: str, expected: str) -> None:
    assert redact(raw) == expected


def test_logs_carry_no_personal_data(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("INFO", json=True)
    get_logger("t").info(
        "lead_saved", note="Kontakt: max@beispiel.de, Tel. +49 30 1234567", password="hunter2"
    )
    line = capsys.readouterr().err.strip().splitlines()[-1]
    event = json.loads(line)
    assert "max@beispiel.de" not in line and "1234567" not in line and "hunter2" not in line
    assert event["note"] == "Kontakt: [email], Tel. [phone]"
    assert event["password"] == "[redacted]"
