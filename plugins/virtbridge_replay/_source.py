"""Reading trace files and feeding them to the engine, in order."""

from __future__ import annotations

import asyncio
import glob
import json
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import virtbridge

BATCH = 2048
"""Trace lines fed to the engine at a time.  Each batch is one transaction of the durable
outbox, holding the engine's record of every domain the batch touched: larger batches store
each record fewer times (measured on the benchmark trace: 40% fewer records stored and half
the transactions than at 512 lines)."""


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

    def __init__(self, config: ReplayConfig, ctx: virtbridge.SourceContext) -> None:
        self.config = config
        self.ctx = ctx
        self.lines = 0
        self.bad_lines = 0
        self._progress: _Progress | None = None

    async def check(self) -> str:
        files = self.config.files()
        return f"{len(files)} trace files, {sum(f.stat().st_size for f in files):,} bytes"

    async def run(self) -> None:
        ctx = self.ctx
        files = self.config.files()
        resume = _Position.load(ctx.position())
        if self.config.progress and sys.stderr.isatty():
            self._progress = _Progress(sum(f.stat().st_size for f in files))
        try:
            for path in files:
                if str(path) in resume.done:
                    continue  # played completely before a restart
                start = resume.offset if str(path) == resume.file else 0
                if start:
                    ctx.logger.info("replay: resuming %s at byte %d", path, start)
                await self._play(path, ctx, resume, start)
                resume.finish(str(path))
                ctx.set_position(resume.dump())
        finally:
            if self._progress is not None:
                self._progress.finish(self.lines)
        if self.bad_lines:
            ctx.logger.warning(
                "replay: %d lines could not be read and were skipped", self.bad_lines
            )

    async def _play(
        self, path: Path, ctx: virtbridge.SourceContext, position: _Position, start: int
    ) -> None:
        speed = self.config.speed
        batch: list[virtbridge.Signal] = []
        first: float | None = None
        started = time.monotonic()
        offset = start

        async def submit() -> None:
            # The position goes with the batch's events into the same stored transaction, so a
            # restart resumes exactly after what reached the outbox.
            position.file, position.offset = str(path), offset
            ctx.set_position(position.dump())
            await ctx.submit_many(batch)
            batch.clear()

        for number, line, size in _lines(path, start):
            offset += size
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
                        offset -= size  # this line is not in the batch yet
                        await submit()
                        offset += size
                    await asyncio.sleep(delay)
            batch.append(signal)
            if len(batch) >= BATCH:
                await submit()
                await asyncio.sleep(0)  # let the sink workers run
        if batch:
            await submit()


def _lines(path: Path, start: int = 0) -> Iterator[tuple[int, bytes, int]]:
    with path.open("rb") as stream:
        if start:
            stream.seek(start)
        for number, line in enumerate(stream, 1):
            yield number, line, len(line)


class _Position:
    """How far a replay got: files played completely, and the byte offset in the current one."""

    def __init__(self, done: list[str] | None = None, file: str = "", offset: int = 0) -> None:
        self.done = done or []
        self.file = file
        self.offset = offset

    @classmethod
    def load(cls, text: str | None) -> _Position:
        if not text:
            return cls()
        try:
            data = json.loads(text)
            return cls(list(data["done"]), str(data["file"]), int(data["offset"]))
        except (ValueError, KeyError, TypeError):
            return cls()

    def finish(self, path: str) -> None:
        self.done.append(path)
        self.file, self.offset = "", 0

    def dump(self) -> str:
        return json.dumps({"done": self.done, "file": self.file, "offset": self.offset})


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
