"""Forms on dashboard pages: read the posted fields into the API's own Pydantic schemas, and
turn their errors (and the services' ``ValidationFailed``) into messages per field, so a page
shows exactly what the API would have said, next to the field."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from starlette.datastructures import FormData

from demandly.kit.errors import DemandlyError
from demandly.web.i18n import Message

Model = TypeVar("Model", bound=BaseModel)
FORM_ERROR = "_form"


class FormInvalid(Exception):
    """The posted form failed validation; ``errors`` maps field names to messages."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))
        self.errors = errors


def fields(form: FormData, *names: str, blank_as_none: bool = True) -> dict[str, Any]:
    """The named text fields of a form; blank ones become None (so optional fields stay unset)."""
    values: dict[str, Any] = {}
    for name in names:
        value = form.get(name)
        if isinstance(value, str):
            value = value.strip()
            if value == "" and blank_as_none:
                continue
            values[name] = value
    return values


def parse(schema: type[Model], data: dict[str, Any]) -> Model:
    """``schema.model_validate(data)``, raising ``FormInvalid`` with one message per field."""
    try:
        return schema.model_validate(data)
    except ValidationError as error:
        raise FormInvalid(errors_of(error)) from None


# Pydantic's own messages ("String should have at most 80 characters") in the words of the
# dashboard, by error type, with the type's context values; German in locale/forms.de.json.
PYDANTIC_MESSAGES: dict[str, str] = {
    "missing": "This field is required.",
    "string_too_short": "Enter at least {min_length} characters.",
    "string_too_long": "Enter at most {max_length} characters.",
    "too_short": "Add at least {min_length}.",
    "too_long": "At most {max_length} entries.",
    "string_pattern_mismatch": "This format is not accepted here.",
    "int_parsing": "Enter a whole number.",
    "int_from_float": "Enter a whole number.",
    "float_parsing": "Enter a number.",
    "decimal_parsing": "Enter a number.",
    "greater_than_equal": "Enter {ge} or more.",
    "greater_than": "Enter more than {gt}.",
    "less_than_equal": "Enter {le} or less.",
    "less_than": "Enter less than {lt}.",
    "literal_error": "Choose one of the options.",
    "enum": "Choose one of the options.",
    "bool_parsing": "Choose yes or no.",
    "url_parsing": "Enter a full web address such as https://example.com.",
    "url_scheme": "Enter an address that starts with https:// or http://.",
    "date_parsing": "Enter a date such as 2026-12-24.",
    "date_from_datetime_parsing": "Enter a date such as 2026-12-24.",
    "time_parsing": "Enter a time such as 09:30.",
    "datetime_parsing": "Enter a date and a time.",
    "datetime_from_date_parsing": "Enter a date and a time.",
    "extra_forbidden": "This field is not expected here.",
}


LIMITS = frozenset({"min_length", "max_length", "ge", "gt", "le", "lt"})
COLLECTIONS = frozenset({"List", "Set", "Tuple", "Dictionary", "Frozenset"})


def message_of(item: Any) -> str:
    """One Pydantic error as the dashboard says it (a ``Message`` where we have the words)."""
    template = PYDANTIC_MESSAGES.get(item["type"])
    if template is None:
        return str(item["msg"]).removeprefix("Value error, ")
    context = item.get("ctx") or {}
    if item["type"] in ("too_short", "too_long") and context.get("field_type") not in COLLECTIONS:
        # A length limit on text checked after a validator: characters, not entries.
        template = PYDANTIC_MESSAGES["string_" + item["type"]]
    if template == PYDANTIC_MESSAGES["string_too_short"] and context.get("min_length") == 1:
        template = PYDANTIC_MESSAGES["missing"]
    return Message(template, **{k: _plain(v) for k, v in context.items() if k in LIMITS})


def _plain(limit: object) -> object:
    """``2`` rather than ``2.0`` for a float field's whole-number limit."""
    return int(limit) if isinstance(limit, float) and limit.is_integer() else limit


def errors_of(error: ValidationError) -> dict[str, str]:
    errors: dict[str, str] = {}
    for item in error.errors():
        location = [str(part) for part in item["loc"] if not isinstance(part, int)]
        name = ".".join(location) or FORM_ERROR
        errors.setdefault(name, message_of(item))
    return errors


def localized(errors: Any, t: Callable[..., str]) -> Any:
    """Field messages (a map, or a map of forms' maps) in the page's language; texts the
    catalogue does not know stay as they came."""
    if isinstance(errors, str):
        return t(errors) if "|" not in errors else errors
    if isinstance(errors, dict):
        return {name: localized(message, t) for name, message in errors.items()}
    return errors


def service_errors(error: DemandlyError) -> dict[str, str]:
    """A service's refusal as field messages: 422s name their field, others go on the form."""
    errors: dict[str, str] = {}
    if isinstance(error.details, list):
        for item in error.details:
            if isinstance(item, dict) and item.get("field"):
                errors.setdefault(str(item["field"]), str(item.get("message") or error.message))
    if not errors:
        errors[FORM_ERROR] = error.message
    return errors
