"""Adding a span to a time, with an error that says which input went past the calendar."""

from __future__ import annotations

from datetime import datetime, timedelta

from partnerkit.errors import ValidationError

__all__ = ["later"]


def later(start: datetime, span: timedelta, field: str, what: str) -> datetime:
    """Return *start* + *span*; a ``ValidationError`` on *field* when that is past year 9999.

    Only a clock set near the end of the calendar gets there: the spans are bounded, but
    the clock is the portal's to set.
    """
    try:
        return start + span
    except OverflowError:
        raise ValidationError(
            field, f"{what} would end after the last date a time can hold (clock {start})"
        ) from None
