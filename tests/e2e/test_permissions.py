"""What the bridge keeps is its user's alone: the state directory 0700, the outbox's files
0600 (they hold VNC/SPICE client addresses and certificate names), and whatever it creates
under a umask of 077 (QEMU's logs and save images of guest memory included)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from tests.support.bridge import ROOT, spawn, write_config


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_state_and_outbox_are_private(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir(mode=0o755)
    state.chmod(0o755)  # as an older bridge, or a package, left it
    out = tmp_path / "events.jsonl"
    config = write_config(
        tmp_path / "bridge.toml",
        state_dir=state,
        control_socket=str(state / "control.sock"),
        sources=[
            {
                "type": "replay",
                "path": str(ROOT / "examples" / "traces" / "poweroff.jsonl"),
                "progress": False,
            }
        ],
        sinks=[{"type": "jsonl", "path": str(out)}],
    )
    old = os.umask(0o022)
    try:
        bridge = spawn(config)
        _, err = bridge.communicate(timeout=60)
    finally:
        os.umask(old)
    assert bridge.returncode == 0, err
    assert mode(state) == 0o700
    outbox = state / "outbox.sqlite3"
    for path in (outbox, Path(f"{outbox}-wal"), Path(f"{outbox}-shm")):
        if path.exists():
            assert mode(path) == 0o600, path
    assert mode(out) == 0o600  # created under the bridge's umask
