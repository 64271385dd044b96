"""Dashboard screen: settings. The agency's branding, logo and favicon, custom domains
(``/app/settings``), a client's profile and lead settings (``/app/clients/{id}/settings``),
and the public brand files (``/brand-assets/{id}``). Every change goes through the services
the API uses, with the API's permission checks."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from fastapi import APIRouter, Response
from pydantic import ValidationError
from starlette.datastructures import FormData, UploadFile

from demandly.auth.dependencies import DbSession
from demandly.auth.permissions import Permission
from demandly.kit.errors import DemandlyError, NotFound
from demandly.kit.pagination import PageParams, paginate
from demandly.leads import schemas as lead_schemas
from demandly.leads import service as lead_service
from demandly.tenancy import assets, dnscheck
from demandly.tenancy import schemas as s
from demandly.tenancy import service as tenancy_service
from demandly.tenancy.branding import DEFAULT_ACCENT, DEFAULT_PRIMARY, HEX_COLOR, contrast_color
from demandly.tenancy.models import Agency, AgencyDomain, Client
from demandly.tenancy.repository import TenancyRepository
from demandly.web.deps import Page, PageDep, PageRoute
from demandly.web.forms import FORM_ERROR, FormInvalid, errors_of, fields, parse, service_errors

router = APIRouter(route_class=PageRoute, include_in_schema=False)

BRANDING_FIELDS = (
    "display_name",
    "primary_color",
    "accent_color",
    "sender_name",
    "support_email",
    "privacy_policy_url",
    "imprint_url",
)
COLOR_DEFAULTS = {"primary_color": DEFAULT_PRIMARY, "accent_color": DEFAULT_ACCENT}
WCAG_AA = 4.5
BLANK_RULES = 3
MAX_RULE_ROWS = 100 + BLANK_RULES  # the API's limit, plus the blank rows a page offers
OPERATORS = ("equals", "in", "exists", "gte", "lte", "contains")


# --- colours -------------------------------------------------------------------------------


def _luminance(color: str) -> float:
    digits = color[1:] if len(color) == 7 else "".join(c * 2 for c in color[1:])
    channels = [int(digits[i : i + 2], 16) / 255 for i in (0, 2, 4)]
    linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def contrast_ratio(first: str, second: str) -> float:
    """WCAG 2 contrast ratio of two hex colours (1 to 21)."""
    light, dark = sorted((_luminance(first), _luminance(second)), reverse=True)
    return (light + 0.05) / (dark + 0.05)


def contrast_hint(page: Page, color: str | None) -> str | None:
    """A warning when text on ``color`` (in the colour the brand puts on it) fails WCAG AA."""
    if not color or not HEX_COLOR.match(color):
        return None
    ratio = contrast_ratio(color, contrast_color(color))
    if ratio >= WCAG_AA:
        return None
    return page.t(
        "Text on this colour is hard to read (contrast {ratio}:1; WCAG AA needs 4.5:1).",
        ratio=f"{ratio:.1f}",
    )


# --- agency settings -----------------------------------------------------------------------


@dataclass
class SettingsForm:
    """What the agency settings page shows besides the stored data: posted values and
    messages, after a refused form."""

    values: dict[str, Any] | None = None
    errors: dict[str, str] = field(default_factory=dict)
    domain: str = ""


def _agency(page: Page) -> Agency:
    """The agency being edited, if the user may change it: the API's rule (403 when seen)."""
    if page.agency is None:
        raise NotFound()
    tenancy_service.authorize(page.auth, Permission.AGENCIES_UPDATE, page.agency.id)
    return page.agency


def _domain_view(record: AgencyDomain) -> dict[str, Any]:
    return {
        "id": record.id,
        "domain": record.domain,
        "verified": record.verified_at is not None,
        "verified_at": record.verified_at,
        "txt_name": dnscheck.challenge_name(record.domain),
        "txt_value": dnscheck.challenge_value(record.verification_token),
    }


async def _render_settings(
    page: Page, form: SettingsForm | None = None, status_code: int = 200
) -> Response:
    agency = _agency(page)
    form = form or SettingsForm()
    cursor = page.request.query_params.get("cursor") or None
    statement = TenancyRepository(page.session).domains(agency.id)
    rows, next_cursor = await paginate(
        page.session, statement, AgencyDomain.id, PageParams(limit=50, cursor=_id_or_none(cursor))
    )
    branding = dict(agency.branding or {})
    values = form.values if form.values is not None else branding
    return page.render(
        "settings/agency.html",
        status_code=status_code,
        title=page.t("Agency settings"),
        section="settings",
        agency=agency,
        values=values,
        branding=branding,
        errors={key: page.t(message) for key, message in form.errors.items()},
        domain=form.domain,
        domains=[_domain_view(r) for r in rows],
        next_url=f"/app/settings?cursor={next_cursor}#domains" if next_cursor else None,
        hints={name: contrast_hint(page, values.get(name)) for name in COLOR_DEFAULTS},
        color_defaults=COLOR_DEFAULTS,
        limits={kind: assets.MAX_BYTES[kind] // 1024 for kind in assets.KINDS},
    )


def _id_or_none(value: str | None) -> str | None:
    if value and len(value) <= 40 and value.replace("_", "").replace("-", "").isalnum():
        return value
    return None


@router.get("/app/settings")
async def agency_settings(page: PageDep) -> Response:
    return await _render_settings(page)


def _color(form: FormData, name: str, stored: str | None) -> str:
    """The hex text field wins; without JavaScript a changed picker counts when the text was
    left as it was."""
    text = str(form.get(name) or "").strip()
    picker = str(form.get(f"{name}_picker") or "").strip().lower()
    if text.lower() == (stored or "").lower() and picker and picker != (stored or "").lower():
        return picker
    return text


def _branding_input(form: FormData, stored: dict[str, Any]) -> dict[str, Any]:
    values: dict[str, Any] = fields(form, *BRANDING_FIELDS, blank_as_none=False)
    for name in COLOR_DEFAULTS:
        values[name] = _color(form, name, stored.get(name))
    # In the API's PATCH, null clears a field: a blank field here does the same.
    return {name: (values.get(name) or None) for name in BRANDING_FIELDS}


@router.post("/app/settings/branding")
async def save_branding(page: PageDep) -> Response:
    agency = _agency(page)
    values = _branding_input(await page.request.form(), dict(agency.branding or {}))
    try:
        data = parse(s.AgencyUpdate, {"branding": values})
    except FormInvalid as invalid:
        errors = {k.removeprefix("branding."): v for k, v in invalid.errors.items()}
        return await _render_settings(page, SettingsForm(values, errors), status_code=422)
    tenancy_service.update_agency(agency, data, actor_ctx=page.auth)
    await page.session.flush()
    return page.redirect("/app/settings", notice="Saved.")


async def _upload(form: FormData) -> bytes:
    upload = form.get("file")
    if not isinstance(upload, UploadFile):
        return b""
    # One byte past the largest limit is enough to say "too large".
    return await upload.read(max(assets.MAX_BYTES.values()) + 1)


@router.post("/app/settings/assets/{kind}")
async def upload_asset(page: PageDep, kind: str) -> Response:
    agency = _agency(page)
    if kind not in assets.KINDS:
        raise NotFound()
    data = await _upload(await page.request.form())
    try:
        await assets.replace_asset(
            page.session,
            agency,
            kind,
            data,
            base_url=page.settings.base_url,
            actor_ctx=page.auth,
        )
    except assets.AssetRefused as refused:
        message = page.t(refused.text, **refused.values)
        return await _render_settings(page, SettingsForm(errors={kind: message}), 422)
    return page.redirect("/app/settings#assets", notice="Saved.")


@router.post("/app/settings/assets/{kind}/remove")
async def remove_asset(page: PageDep, kind: str) -> Response:
    agency = _agency(page)
    await assets.remove_asset(page.session, agency, kind, actor_ctx=page.auth)
    return page.redirect("/app/settings#assets", notice="Deleted.")


@router.post("/app/settings/domains")
async def add_domain(page: PageDep) -> Response:
    agency = _agency(page)
    posted = fields(await page.request.form(), "domain")
    try:
        data = parse(s.DomainCreate, posted)
        own_host = tenancy_service.platform_host(page.settings.base_url)
        await tenancy_service.add_domain(page.session, agency, data.domain, own_host=own_host)
    except FormInvalid as invalid:
        return await _domain_refused(page, invalid.errors, posted.get("domain", ""))
    except DemandlyError as error:
        if error.status_code in (403, 404):
            raise
        return await _domain_refused(page, service_errors(error), posted.get("domain", ""))
    return page.redirect(
        "/app/settings#domains", notice="Domain added. Create the TXT record, then verify."
    )


async def _domain_refused(page: Page, errors: dict[str, str], domain: str) -> Response:
    message = errors.get("domain") or errors.get(FORM_ERROR) or next(iter(errors.values()))
    if message == "taken":
        message = "This domain is already registered."
    form = SettingsForm(errors={"domain": page.t(message)}, domain=domain[:300])
    return await _render_settings(page, form, status_code=422)


@router.post("/app/settings/domains/{domain_id}/verify")
async def verify_domain(page: PageDep, domain_id: str) -> Response:
    agency = _agency(page)
    record = await tenancy_service.get_domain(page.session, agency, domain_id[:40])
    try:
        await tenancy_service.verify_domain(
            page.session, record, nameserver=page.settings.dns_nameserver
        )
    except DemandlyError as error:
        if error.status_code in (403, 404):
            raise
        form = SettingsForm(errors={f"verify:{record.id}": error.message})
        return await _render_settings(page, form, status_code=422)
    return page.redirect("/app/settings#domains", notice="Domain verified.")


@router.post("/app/settings/domains/{domain_id}/remove")
async def remove_domain(page: PageDep, domain_id: str) -> Response:
    agency = _agency(page)
    record = await tenancy_service.get_domain(page.session, agency, domain_id[:40])
    await tenancy_service.remove_domain(page.session, record)
    return page.redirect("/app/settings#domains", notice="Deleted.")


# --- public brand files --------------------------------------------------------------------


@router.get("/brand-assets/{asset_id}")
async def brand_asset(asset_id: str, session: DbSession) -> Response:
    """A logo or favicon, public by its unguessable id; a new upload gets a new id, so the
    answer never changes and may be cached for good."""
    try:
        asset = await assets.public_asset(session, asset_id)
    except NotFound:
        return Response(status_code=404, headers={"Cache-Control": "no-store"})
    headers = {
        "Cache-Control": "public, max-age=31536000, immutable",
        "X-Content-Type-Options": "nosniff",
        "ETag": f'"{asset.sha256}"',
        "Content-Disposition": "inline",
    }
    if asset.content_type == assets.SVG:
        headers["Content-Security-Policy"] = "default-src 'none'; style-src 'unsafe-inline'"
    return Response(asset.data, media_type=asset.content_type, headers=headers)


# --- client settings -----------------------------------------------------------------------


@dataclass
class ClientForm:
    """Posted values and messages of one refused form on the client settings page."""

    which: str = ""
    values: dict[str, Any] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)


def _rule_rows(rules: list[dict[str, Any]]) -> list[dict[str, str]]:
    rows = []
    for rule in rules:
        value = rule.get("value")
        if isinstance(value, list):
            text = ", ".join(_scalar_text(v) for v in value)
        else:
            text = "" if value is None else _scalar_text(value)
        rows.append(
            {
                "field": str(rule.get("field", "")),
                "op": str(rule.get("op", "equals")),
                "value": text,
                "points": str(rule.get("points", "")),
            }
        )
    return rows


def _scalar_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


async def _render_client_settings(
    page: Page, client: Client, form: ClientForm | None = None, status_code: int = 200
) -> Response:
    form = form or ClientForm()
    stored = await lead_service.settings_of(page.session, client.id)
    profile = {
        "name": client.name,
        "timezone": client.timezone,
        "locale": client.locale,
        "privacy_policy_url": client.privacy_policy_url or "",
    }
    notifications = {
        "notify_emails": "\n".join(stored.notify_emails or []),
        "notify_on": list(stored.notify_on or []),
    }
    scoring = {
        "rules": _rule_rows(list(stored.rules or [])),
        "qualify_at": "" if stored.qualify_at is None else str(stored.qualify_at),
    }
    posted = {"profile": profile, "notifications": notifications, "scoring": scoring}
    if form.which in posted:
        posted[form.which] = {**posted[form.which], **form.values}
    rules = posted["scoring"]["rules"]
    blank = {"field": "", "op": "equals", "value": "", "points": ""}
    return page.render(
        "settings/client.html",
        status_code=status_code,
        title=page.t("Client settings"),
        section="client-settings",
        client=client,
        profile=posted["profile"],
        notifications=posted["notifications"],
        scoring=posted["scoring"],
        rule_rows=[*rules, *[dict(blank) for _ in range(BLANK_RULES)]],
        operators=OPERATORS,
        which=form.which,
        errors={key: page.t(message) for key, message in form.errors.items()},
        can_update=page.can(Permission.CLIENTS_UPDATE, client.id),
        can_score=page.can(Permission.CONTENT_WRITE, client.id),
        can_suspend=page.can(Permission.CLIENTS_CREATE),
        can_delete=page.can(Permission.CLIENTS_DELETE, client.id),
    )


@router.get("/app/clients/{client_id}/settings")
async def client_settings(page: PageDep, client_id: str) -> Response:
    client = await page.client(client_id, Permission.CLIENT_SETTINGS)
    return await _render_client_settings(page, client)


def _settings_url(client: Client) -> str:
    return f"/app/clients/{client.id}/settings"


@router.post("/app/clients/{client_id}/settings/profile")
async def save_profile(page: PageDep, client_id: str) -> Response:
    client = await page.client(client_id, Permission.CLIENT_SETTINGS)
    page.require(Permission.CLIENTS_UPDATE, client.id)
    form = await page.request.form()
    values = fields(form, "name", "timezone", "locale", "privacy_policy_url", blank_as_none=False)
    data: dict[str, Any] = dict(values)
    data["privacy_policy_url"] = values.get("privacy_policy_url") or None  # blank clears it
    try:
        update = parse(s.ClientUpdate, data)
    except FormInvalid as invalid:
        refused = ClientForm("profile", values, invalid.errors)
        return await _render_client_settings(page, client, refused, 422)
    tenancy_service.update_client(client, update, actor_ctx=page.auth)
    await page.session.flush()
    return page.redirect(_settings_url(client), notice="Saved.")


def _emails(text: str) -> list[str]:
    return [part.strip() for part in text.replace(",", "\n").splitlines() if part.strip()]


@router.post("/app/clients/{client_id}/settings/notifications")
async def save_notifications(page: PageDep, client_id: str) -> Response:
    client = await page.client(client_id, Permission.CLIENT_SETTINGS)
    form = await page.request.form()
    text = str(form.get("notify_emails") or "")[:20_000]
    notify_on = [str(v) for v in form.getlist("notify_on")][:5]
    try:
        data = parse(
            lead_schemas.LeadNotifications,
            {"notify_emails": _emails(text), "notify_on": notify_on},
        )
    except FormInvalid as invalid:
        values = {"notify_emails": text, "notify_on": notify_on}
        refused = ClientForm("notifications", values, invalid.errors)
        return await _render_client_settings(page, client, refused, 422)
    await lead_service.put_notifications(page.session, client, data)
    return page.redirect(_settings_url(client) + "#notifications", notice="Saved.")


def _rule_value(op: str, text: str) -> Any:
    """A rule's value as the API takes it: a list for ``in``, a number for ``gte``/``lte``."""
    text = text.strip()
    if op == "exists":
        return None
    if op == "in":
        return [_scalar(part.strip()) for part in text.split(",") if part.strip()]
    if op in ("gte", "lte"):
        return _number(text)
    return _scalar(text) if op == "equals" else (text or None)


def _number(text: str) -> Any:
    try:
        return int(text)
    except ValueError:
        try:
            return float(text)
        except ValueError:
            return text or None


def _scalar(text: str) -> Any:
    if text in ("true", "false"):
        return text == "true"
    number = _number(text)
    return number if number is not None else None


def _posted_rules(form: FormData) -> tuple[list[dict[str, str]], list[dict[str, Any]]]:
    """(the rows as typed, the rules as the API takes them); rows without a field are empty."""
    rows: list[dict[str, str]] = []
    rules: list[dict[str, Any]] = []
    for index in range(MAX_RULE_ROWS):
        row = {
            key: str(form.get(f"rule-{index}-{key}") or "").strip()[:500]
            for key in ("field", "op", "value", "points")
        }
        if not row["field"]:
            continue
        rows.append(row)
        rules.append(
            {
                "field": row["field"],
                "op": row["op"],
                "value": _rule_value(row["op"], row["value"]),
                "points": row["points"] or "0",
            }
        )
    return rows, rules


def _rule_errors(rules: list[dict[str, Any]]) -> dict[str, str]:
    errors: dict[str, str] = {}
    for index, rule in enumerate(rules):
        try:
            lead_schemas.ScoringRule.model_validate(rule)
        except ValidationError as error:
            found = errors_of(error)
            errors[f"rule-{index}"] = "; ".join(f"{k}: {v}" for k, v in found.items())
    return errors


@router.post("/app/clients/{client_id}/settings/scoring")
async def save_scoring(page: PageDep, client_id: str) -> Response:
    client = await page.client(client_id, Permission.CLIENT_SETTINGS)
    page.require(Permission.CONTENT_WRITE, client.id)
    form = await page.request.form()
    rows, rules = _posted_rules(form)
    qualify_at = str(form.get("qualify_at") or "").strip()[:20]
    errors = _rule_errors(rules)
    try:
        data = parse(lead_schemas.LeadScoring, {"rules": rules, "qualify_at": qualify_at or None})
    except FormInvalid as invalid:
        errors = {**invalid.errors, **errors}
    if errors:
        values = {"rules": rows, "qualify_at": qualify_at}
        refused = ClientForm("scoring", values, errors)
        return await _render_client_settings(page, client, refused, 422)
    await lead_service.put_scoring(page.session, client, data)
    return page.redirect(_settings_url(client) + "#scoring", notice="Saved.")


@router.post("/app/clients/{client_id}/settings/status")
async def set_status(page: PageDep, client_id: str) -> Response:
    client = await page.client(client_id, Permission.CLIENT_SETTINGS)
    page.require(Permission.CLIENTS_UPDATE, client.id)
    form = await page.request.form()
    wanted = "suspended" if form.get("status") == "suspended" else "active"
    tenancy_service.update_client(client, s.ClientUpdate(status=wanted), actor_ctx=page.auth)
    await page.session.flush()
    notice = "Client suspended." if wanted == "suspended" else "Client reactivated."
    return page.redirect(_settings_url(client), notice=notice)


@router.post("/app/clients/{client_id}/settings/delete")
async def delete_client(page: PageDep, client_id: str) -> Response:
    client = await page.client(client_id, Permission.CLIENT_SETTINGS)
    tenancy_service.authorize(page.auth, Permission.CLIENTS_DELETE, client.agency_id, client.id)
    form = await page.request.form()
    typed = str(form.get("confirm_name") or "").strip()
    if typed != client.name:
        message = page.t("Type the client's name exactly to delete it.")
        refused = ClientForm("delete", {"confirm_name": typed[:200]}, {"confirm_name": message})
        return await _render_client_settings(page, client, refused, 422)
    await tenancy_service.delete_client(page.session, client)
    return page.redirect("/app", notice="Client deleted.")
