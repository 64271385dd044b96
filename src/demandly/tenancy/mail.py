"""The invitation e-mail: in the agency's brand and language, with the one-time accept link.
Sent by whoever creates an invitation (the API and the dashboard's team page alike)."""

from __future__ import annotations

import html

from sqlalchemy.ext.asyncio import AsyncSession

from demandly.integrations.email import OutgoingEmail, brand_for, branded_html, queue_email
from demandly.tenancy.models import Role
from demandly.tenancy.repository import TenancyRepository
from demandly.tenancy.service import IssuedInvitation

ROLE_NAMES = {
    "de": {
        Role.AGENCY_OWNER: "Inhaber/in",
        Role.AGENCY_ADMIN: "Administrator/in",
        Role.AGENCY_MEMBER: "Mitarbeiter/in",
        Role.CLIENT_ADMIN: "Administrator/in",
        Role.CLIENT_MEMBER: "Mitarbeiter/in",
        Role.CLIENT_VIEWER: "Leserechte",
    },
    "en": {
        Role.AGENCY_OWNER: "owner",
        Role.AGENCY_ADMIN: "administrator",
        Role.AGENCY_MEMBER: "member",
        Role.CLIENT_ADMIN: "administrator",
        Role.CLIENT_MEMBER: "member",
        Role.CLIENT_VIEWER: "viewer",
    },
}
WORDS = {
    "de": {
        "subject": "Einladung zu {place}",
        "intro": "{inviter} lädt Sie zu {place} ein (Rolle: {role}).",
        "button": "Einladung annehmen",
        "expiry": "Der Link gilt 7 Tage und nur einmal. Wenn Sie die Einladung nicht erwartet "
        "haben, können Sie diese E-Mail ignorieren.",
        "someone": "Jemand",
    },
    "en": {
        "subject": "Your invitation to {place}",
        "intro": "{inviter} invites you to {place} (role: {role}).",
        "button": "Accept the invitation",
        "expiry": "The link works once and for 7 days. If you did not expect this invitation, "
        "you can ignore this e-mail.",
        "someone": "Someone",
    },
}


async def mail_invitation(
    session: AsyncSession, issued: IssuedInvitation, *, accept_url: str, inviter: str | None
) -> None:
    """Queue the invitation e-mail in the caller's transaction."""
    invitation = issued.invitation
    repo = TenancyRepository(session)
    agency = await repo.agency(invitation.agency_id)
    client = await repo.client(invitation.client_id) if invitation.client_id else None
    if agency is None:
        return
    brand = await brand_for(session, agency.id)
    language = (client.locale if client is not None else agency.locale) or "de"
    language = language if language in WORDS else "en"
    words = WORDS[language]
    place = client.name if client is not None else brand.name
    intro = words["intro"].format(
        inviter=inviter or words["someone"],
        place=place,
        role=ROLE_NAMES[language][Role(invitation.role)],
    )
    subject = words["subject"].format(place=place)
    text = f"{intro}\n\n{accept_url}\n\n{words['expiry']}\n\n{brand.name}\n"
    body = (
        f"<p>{html.escape(intro)}</p>"
        f'<p><a href="{html.escape(accept_url, quote=True)}">{html.escape(words["button"])}</a></p>'
        f"<p>{html.escape(words['expiry'])}</p>"
    )
    await queue_email(
        session,
        OutgoingEmail(
            to=invitation.email, subject=subject, text=text, html=branded_html(brand, subject, body)
        ),
        brand=brand,
        agency_id=agency.id,
        client_id=invitation.client_id,
        idempotency_key=f"invitation:{invitation.id}",
    )
