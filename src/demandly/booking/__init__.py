"""Calendars, availability, appointments, ICS, reminders and the public booking page."""
