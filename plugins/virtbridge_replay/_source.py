"""Reading trace files and feeding them to the engine, in order."""

from __future__ import annotations

import asyncio
import glob
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import virtbridge

BATCH = 512


class ReplayConfig(virtbridge.PluginConfig, kw_only=True, forbid_unknown_fields=True):
    path: str | list[str]
    speed: float = 0.0
    progress: bool = True

    def __post_init__(self) -> None:
        if self.speed < 0:
            raise ValueError("speed: must be 0 (as fast as possible) or a positive factor")
        if not self.files():
            patterns = self.path if isinstance(self.path, str) else ", ".join(self.path)
            raise ValueError(f"path: no trace file matches {patterns!r}")

    def files(self) -> list[Path]:
        patterns = [self.path] if isinstance(self.path, str) else self.path
        found: list[Path] = []
        for pattern in patterns:
            expanded = os.path.expanduser(pattern)
            matches = sorted(glob.glob(expanded)) if glob.has_magic(expanded) else [expanded]
            found.extend(Path(m) for m in matches if Path(m).is_file())
        return found


class ReplaySource(virtbridge.Source):
    """Plays trace files; owns no process, so the engine's actions are ignored."""

    live = False

    def __init__(self, config: ReplayConfig) -> None:
        self.config = config
        self.lines = 0
        self.bad_lines = 0
        self._progress: _Progress | None = None

    async def check(self) -> str:
        files = self.config.files()
        return f"{len(files)} trace files, {sum(f.stat().st_size for f in files):,} bytes"

    async def run(self, ctx: virtbridge.SourceContext) -> None:
        files = self.config.files()
        if self.config.progress and sys.stderr.isatty():
            self._progress = _Progress(sum(f.stat().st_size for f in files))
        try:
            for path in files:
                await self._play(path, ctx)
        finally:
            if self._progress is not None:
                self._progress.finish(self.lines)
        if self.bad_lines:
            ctx.logger.warning(
                "replay: %d lines could not be read and were skipped", self.bad_lines
            )

    async def _play(self, path: Path, ctx: virtbridge.SourceContext) -> None:
        speed = self.config.speed
        batch: list[virtbridge.Signal] = []
        first: float | None = None
        started = time.monotonic()
        for number, line, size in _lines(path):
            self.lines += 1
            if self._progress is not None:
                self._progress.advance(size, self.lines)
            try:
                signal = virtbridge.parse_trace_line(line)
            except virtbridge.TraceError as exc:
                self.bad_lines += 1
                ctx.logger.error("%s:%d: %s (line skipped)", path, number, exc)
                continue
            if signal is None:
                continue
            if speed > 0 and signal.timestamp is not None:
                moment = signal.timestamp.as_float()
                first = moment if first is None else first
                delay = started + (moment - first) / speed - time.monotonic()
                if delay > 0:
                    if batch:
                        await ctx.submit_many(batch)
                        batch = []
                    await asyncio.sleep(delay)
            batch.append(signal)
            if len(batch) >= BATCH:
                await ctx.submit_many(batch)
                batch = []
                await asyncio.sleep(0)  # let the sink workers run
        if batch:
            await ctx.submit_many(batch)


def _lines(path: Path) -> Iterator[tuple[int, bytes, int]]:
    with path.open("rb") as stream:
        for number, line in enumerate(stream, 1):
            yield number, line, len(line)


class _Progress:
    """A one-line progress bar on stderr (only used when stderr is a terminal)."""

    def __init__(self, total: int) -> None:
        self.total = max(total, 1)
        self.done = 0
        self.started = time.monotonic()
        self.shown = 0.0

    def advance(self, size: int, lines: int) -> None:
        self.done += size
        now = time.monotonic()
        if now - self.shown >= 0.25:
            self.shown = now
            self._draw(lines, now)

    def _draw(self, lines: int, now: float) -> None:
        fraction = min(self.done / self.total, 1.0)
        bar = "#" * int(fraction * 30)
        rate = lines / max(now - self.started, 1e-9)
        sys.stderr.write(f"\rreplay [{bar:<30}] {fraction:6.1%} {lines:,} lines {rate:,.0f}/s ")
        sys.stderr.flush()

    def finish(self, lines: int) -> None:
        self._draw(lines, time.monotonic())
        sys.stderr.write("\n")
        sys.stderr.flush()
