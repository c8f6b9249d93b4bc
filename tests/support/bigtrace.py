"""Large traces made from the recorded ones (domains renamed, a window of them interleaved)."""

from __future__ import annotations

from pathlib import Path

import msgspec

from virtbridge import Engine
from virtbridge.wire.trace import parse_line

ROOT = Path(__file__).resolve().parents[2]
TRACES = ROOT / "examples" / "traces"


def scenarios() -> list[list[dict[str, object]]]:
    out = []
    for path in sorted(TRACES.glob("*.jsonl")):
        if path.name == "mixed.jsonl":
            continue
        lines = [
            line for line in path.read_text().splitlines() if line and not line.startswith("#")
        ]
        out.append([msgspec.json.decode(line) for line in lines])
    return out


def events_per_run(script: list[dict[str, object]]) -> int:
    engine = Engine()
    signals = [parse_line(msgspec.json.encode(obj)) for obj in script]
    return sum(len(engine.feed(s).events) for s in signals if s is not None)


def build_trace(
    path: Path, target_events: int, window: int = 100, prefix: str = "bench"
) -> tuple[int, int]:
    """Write a trace with at least ``target_events`` events; return (lines, events)."""
    scripts = scenarios()
    yields = [events_per_run(s) for s in scripts]
    encoder = msgspec.json.Encoder()
    lines = events = domain = 0
    with path.open("wb") as out:
        while events < target_events:
            group = []
            for _ in range(window):
                index = domain % len(scripts)
                name = f"{prefix}-{domain}"
                group.append([{**obj, "domain": name} for obj in scripts[index]])
                events += yields[index]
                domain += 1
            longest = max(len(s) for s in group)
            for step in range(longest):
                for script in group:
                    if step < len(script):
                        out.write(encoder.encode(script[step]) + b"\n")
                        lines += 1
    return lines, events


def final_states(path: Path) -> dict[str, tuple[str, str, int]]:
    """What the engine says each domain of a trace ends in: name → (state, reason, id),
    from the last event of each domain; undefined domains have none."""
    from virtbridge import EventType

    engine = Engine()
    out: dict[str, tuple[str, str, int]] = {}
    with path.open("rb") as lines:
        for line in lines:
            signal = parse_line(line)
            if signal is None:
                continue
            for event in engine.feed(signal).events:
                life = event.lifecycle
                if life is not None and life.event is EventType.UNDEFINED:
                    out.pop(event.domain.name, None)
                    continue
                out[event.domain.name] = (
                    event.state.name,
                    event.reason_enum.name,
                    event.domain.id,
                )
    return out
