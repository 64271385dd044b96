"""The white-label dashboard: server-rendered pages (Jinja2 + htmx) over the same services as
the API, in the brand of the agency whose domain (or user) it is."""
