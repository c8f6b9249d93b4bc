"""Checks a review confirmed and that must stay true: ``${VAR}`` is not expanded twice, and
the control socket is 0600 from its first moment and answers only root and the bridge's own
user (SO_PEERCRED), even if its file mode were loosened."""

from __future__ import annotations

import asyncio
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from virtbridge.config.load import load
from virtbridge.runtime.bridge import Bridge


def test_variables_are_not_expanded_twice() -> None:
    environ = {"OUTER": "${INNER}", "INNER": "surprise", "DOLLARS": "$$x"}
    config = load(
        None,
        data={
            "bridge": {"host": "${OUTER}", "state_dir": "/tmp/x-${DOLLARS}"},
            "sinks": [{"type": "null"}],
        },
        environ=environ,
    )
    assert config.bridge.host == "${INNER}"  # the value, taken literally
    assert config.bridge.state_dir == "/tmp/x-$$x"


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to connect as another user")
def test_the_control_socket_answers_only_its_own(tmp_path: Path) -> None:
    sock = tmp_path / "control.sock"
    os.chmod(tmp_path, 0o755)  # so that another user can reach the socket at all
    data = {
        "bridge": {
            "state_dir": str(tmp_path / "state"),
            "control_socket": str(sock),
            "outbox": "memory",
        },
        "sinks": [{"type": "null"}],
    }
    client = (
        "import os, socket, sys\n"
        "os.setgid(65534); os.setuid(65534)\n"
        "s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1])\n"
        's.sendall(b\'{"op": "status"}\\n\')\n'
        "print(s.recv(65536).decode() or 'CLOSED')\n"
    )

    async def scenario() -> tuple[int, str]:
        bridge = Bridge(load(None, data=data))
        task = asyncio.create_task(bridge.run(handle_signals=False))
        while not sock.exists():
            await asyncio.sleep(0.01)
        created = stat.S_IMODE(sock.stat().st_mode)
        sock.chmod(0o666)  # even then, the peer check keeps strangers out
        answer = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-c", client, str(sock)],
            capture_output=True,
            text=True,
            timeout=20,
        )
        bridge.request_stop()
        await asyncio.wait_for(task, 30)
        return created, answer.stdout + answer.stderr

    created, reply = asyncio.run(scenario())
    assert created == 0o600
    assert '"status"' not in reply and "host" not in reply, reply
