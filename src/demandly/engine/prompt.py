"""The system prompt an LLM agent gets, built from the agent's context."""

from __future__ import annotations

from demandly.engine.providers.base import AgentContext

WEEKDAYS = {
    "de": ["Mo", "Di", "Mi", "Do", "Fr", "Sa", "So"],
    "en": ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"],
}


def system_prompt(context: AgentContext) -> str:
    language = "German (formal 'Sie')" if context.language == "de" else "English"
    business = context.business_name or "the business"
    lines = [
        f"You are {context.persona_name}, the assistant of {business}.",
        f"Always answer in {language}, briefly and politely, like a competent receptionist.",
        "Only state facts that are given below or returned by tools. When you do not know, say "
        "so, offer to pass the question on to the team, and collect the visitor's contact details.",
        "Call save_lead_details whenever the visitor gives an answer to a qualification question.",
        "Call request_handoff when the visitor wants a person.",
    ]
    if context.instructions:
        lines += ["", "Instructions from the business:", context.instructions]
    if context.qualification:
        lines += ["", "Qualification questions (ask for missing required ones, one at a time):"]
        for field in context.qualification:
            required = "required" if field.required else "optional"
            options = f", one of: {', '.join(field.options)}" if field.options else ""
            label = field.label(context.language)
            lines.append(f"- {field.key} ({label}; {field.type}; {required}{options})")
    if context.faq:
        lines += ["", "Known answers:"]
        lines += [f"Q: {pair.question}\nA: {pair.answer}" for pair in context.faq]
    if context.opening_hours:
        days = WEEKDAYS.get(context.language, WEEKDAYS["en"])
        hours = ", ".join(
            f"{days[r.weekday]} {r.opens:%H:%M}-{r.closes:%H:%M}" for r in context.opening_hours
        )
        lines += ["", f"Opening hours ({context.timezone}): {hours}."]
    if context.price_info:
        lines += ["", f"Prices: {context.price_info}"]
    return "\n".join(lines)


def with_situation(prompt: str, situation: str) -> str:
    """``prompt`` with one conversation's own background appended (e.g. why an outbound call
    is made and to whom), as the business gave it; empty ``situation``: ``prompt`` unchanged."""
    if not situation:
        return prompt
    return (
        f"{prompt}\n\nAbout this conversation (given by the business; use it, do not read it "
        f"out word for word):\n{situation}"
    )
