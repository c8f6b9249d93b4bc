"""Newline framing for QMP, without I/O: bytes in, bounded lines out."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["LineFramer", "Oversized"]


@dataclass(frozen=True)
class Oversized:
    """A line longer than the limit was dropped; ``size`` is how much of it had been seen."""

    size: int


class LineFramer:
    """Splits a byte stream at ``\\n`` into lines of at most ``limit`` bytes.

    A longer line is reported once as :class:`Oversized` and then skipped up to its newline, so
    memory stays bounded whatever the peer sends.
    """

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError(f"line limit must be positive, got {limit}")
        self._limit = limit
        self._buffer = bytearray()
        self._discarding = False  # inside an oversized line, until its newline

    @property
    def pending(self) -> bytes:
        """The unterminated tail kept so far (empty while skipping an oversized line)."""
        return bytes(self._buffer)

    def feed(self, chunk: bytes) -> list[bytes | Oversized]:
        out: list[bytes | Oversized] = []
        start = 0
        while (newline := chunk.find(b"\n", start)) >= 0:
            piece = chunk[start:newline]
            start = newline + 1
            if self._discarding:
                self._discarding = False
            elif len(self._buffer) + len(piece) > self._limit:
                out.append(Oversized(len(self._buffer) + len(piece)))
                self._buffer.clear()
            else:
                self._buffer += piece
                out.append(bytes(self._buffer))
                self._buffer.clear()
        if not self._discarding:
            self._buffer += chunk[start:]
            if len(self._buffer) > self._limit:
                out.append(Oversized(len(self._buffer)))
                self._buffer.clear()
                self._discarding = True
        return out
