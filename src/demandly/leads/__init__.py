"""Contacts and leads: dedupe, qualification answers, scoring, forwarding."""
