"""Field errors read in the page's language: Pydantic's own messages by their type, the
schemas' messages from the catalogue, and nothing else changed."""

from __future__ import annotations

from pydantic import BaseModel, Field

from demandly.kit.db import Database
from demandly.web.forms import FormInvalid, localized, parse
from demandly.web.i18n import translate
from tests.factories import make_tenant
from tests.web.support import browser, sign_in


class Sample(BaseModel):
    name: str = Field(min_length=1, max_length=5)
    seats: int = Field(ge=1, le=9)


def _errors(data: dict[str, object]) -> dict[str, str]:
    try:
        parse(Sample, data)
    except FormInvalid as invalid:
        return invalid.errors
    raise AssertionError("the form should not have passed")


def test_pydantic_messages_become_the_dashboards_words_with_their_limits() -> None:
    errors = _errors({"name": "far too long", "seats": "12"})
    assert errors == {"name": "Enter at most 5 characters.", "seats": "Enter 9 or less."}
    german = localized(errors, lambda text, **values: translate("de", text, **values))
    assert german == {
        "name": "Bitte höchstens 5 Zeichen eingeben.",
        "seats": "Bitte 9 oder weniger eingeben.",
    }
    assert _errors({"name": "", "seats": "x"}) == {
        "name": "This field is required.",
        "seats": "Enter a whole number.",
    }


def test_texts_the_catalogue_does_not_know_stay_as_they_are() -> None:
    german = localized(
        {"a": "Something only the service says.", "b": {"c": "a|b literal"}},
        lambda text, **values: translate("de", text, **values),
    )
    assert german == {"a": "Something only the service says.", "b": {"c": "a|b literal"}}


async def test_a_german_page_shows_german_field_errors(app, db: Database) -> None:  # type: ignore[no-untyped-def]
    tenant = await make_tenant(db)
    german = {"Accept-Language": "de-DE,de;q=0.9"}
    async with browser(app) as client:
        token = await sign_in(client, tenant.users["agency_admin"])
        too_long = await client.post(
            "/app/clients", data={"name": "x" * 201, "csrf_token": token}, headers=german
        )
        blank = await client.post(
            "/app/clients", data={"name": "", "csrf_token": token}, headers=german
        )
    assert too_long.status_code == 422
    assert "Bitte höchstens 200 Zeichen eingeben." in too_long.text
    assert blank.status_code == 422
    assert "Dieses Feld ist erforderlich." in blank.text
