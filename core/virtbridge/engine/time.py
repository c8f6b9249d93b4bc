"""Timestamps as QEMU sends them: whole seconds and microseconds since the Unix epoch."""

from __future__ import annotations

import datetime as _dt

import msgspec


class Timestamp(msgspec.Struct, frozen=True, gc=False):
    """A point in time as QMP writes it (``{"seconds": S, "microseconds": U}``).

    Kept as two integers so a recorded trace round-trips exactly; no clock is ever read here.
    """

    seconds: int
    microseconds: int = 0

    @classmethod
    def from_float(cls, value: float) -> Timestamp:
        """Build a timestamp from float seconds since the epoch (rounded to the microsecond)."""
        total = round(value * 1_000_000)
        return cls(total // 1_000_000, total % 1_000_000)

    def as_float(self) -> float:
        return self.seconds + self.microseconds / 1_000_000

    def as_micros(self) -> int:
        return self.seconds * 1_000_000 + self.microseconds

    def isoformat(self) -> str:
        """RFC 3339 in UTC with microseconds, as CloudEvents' ``time`` wants it."""
        moment = _dt.datetime.fromtimestamp(self.seconds, tz=_dt.timezone.utc)
        return moment.strftime("%Y-%m-%dT%H:%M:%S") + f".{self.microseconds:06d}Z"

    def to_json(self) -> dict[str, int]:
        return {"seconds": self.seconds, "microseconds": self.microseconds}
