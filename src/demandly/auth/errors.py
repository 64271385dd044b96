"""An error answer whose database changes must still be kept."""

from __future__ import annotations

from demandly.kit.errors import DemandlyError


class FailAfterCommit(Exception):
    """Raised by a service when the request must answer ``error`` but the work done so far
    (a failed login's count, its audit event) has to be committed, not rolled back.

    The request's session dependency commits, then raises ``error`` for the error handler.
    """

    def __init__(self, error: DemandlyError) -> None:
        super().__init__(error.message)
        self.error = error
