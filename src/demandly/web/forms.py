"""Forms on dashboard pages: read the posted fields into the API's own Pydantic schemas, and
turn their errors (and the services' ``ValidationFailed``) into messages per field, so a page
shows exactly what the API would have said, next to the field."""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from starlette.datastructures import FormData

from demandly.kit.errors import DemandlyError

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


def errors_of(error: ValidationError) -> dict[str, str]:
    errors: dict[str, str] = {}
    for item in error.errors():
        location = [str(part) for part in item["loc"] if not isinstance(part, int)]
        name = ".".join(location) or FORM_ERROR
        message = str(item["msg"]).removeprefix("Value error, ")
        errors.setdefault(name, message)
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
