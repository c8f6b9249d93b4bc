"""Bridges and ``virsh event`` run side by side, for the tests that prove the libvirt source.

* :class:`BridgeProcess`: ``virtbridge run`` as its own process (``bridge.spawn``) with a
  ``jsonl`` sink and a ``domain-events`` sink in virsh's format, and its control socket.
* :class:`VirshEvents`: ``virsh event --all --loop`` on the same libvirtd: a real libvirt
  client, the oracle.
* :func:`sync`: define and undefine a marker domain and wait until every reader printed it,
  so a test knows its readers are subscribed, and later that they have caught up.
* :func:`describe` / :func:`fold`: one event (a CloudEvent's ``data``) as one exact line with
  libvirt's codes; runs of REBOOT folded (SeaBIOS resets once or twice more by itself).

Every wait is bounded.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from .bridge import spawn, virtbridge, write_config

WAIT = 15.0

MARKER_XML = """<domain type='qemu'>
  <name>{name}</name>
  <memory unit='MiB'>16</memory>
  <os><type arch='x86_64' machine='pc'>hvm</type></os>
  <devices><emulator>/usr/bin/qemu-system-x86_64</emulator></devices>
</domain>"""


def until(
    condition: Callable[[], object], what: str | Callable[[], str], timeout: float = WAIT
) -> None:
    """Poll ``condition`` until true; AssertionError after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            shown = what() if callable(what) else what
            raise AssertionError(f"not met within {timeout} s: {shown}")
        time.sleep(0.02)


def _lines(path: Path) -> list[str]:
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        return []
    return text[: text.rfind("\n") + 1].splitlines()


class VirshEvents:
    """``virsh -c URI event --all --loop``, line-buffered into a file."""

    def __init__(self, uri: str, path: Path) -> None:
        self.path = path
        argv = ["virsh", "-c", uri, "event", "--all", "--loop"]
        if shutil.which("stdbuf"):
            argv = ["stdbuf", "-oL", *argv]
        self.out = path.open("w")
        self.process = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=self.out, stderr=subprocess.STDOUT
        )

    def lines(self, domain: str | None = None) -> list[str]:
        lines = [line for line in _lines(self.path) if line.startswith("event ")]
        return [line for line in lines if domain is None or f" for domain '{domain}'" in line]

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self.out.close()


def plugins() -> list[str]:
    """``plugins = [...]`` that loads the libvirt plugin, unless its entry point already does
    (registered twice, under two names, it would be refused)."""
    points = importlib.metadata.entry_points(group="virtbridge")
    if any(point.value.split(":")[0] == "virtbridge_libvirt" for point in points):
        return []
    return ["virtbridge_libvirt"]


class BridgeProcess:
    """``virtbridge run`` with ``sources``, a jsonl sink and a virsh-style printer."""

    def __init__(self, directory: Path, sources: Sequence[dict[str, Any]], **bridge: Any) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.dir = directory
        self.events_path = directory / "events.jsonl"
        self.virsh_path = directory / "virsh.txt"
        self.socket = directory / "control.sock"
        self.config = write_config(
            directory / "virtbridge.toml",
            state_dir=directory / "state",
            sources=sources,
            sinks=[
                {"type": "jsonl", "path": str(self.events_path)},
                {"type": "domain-events", "format": "virsh", "path": str(self.virsh_path)},
            ],
            control_socket=str(self.socket),
            plugins=plugins(),
            **bridge,
        )
        self.process = spawn(self.config)
        self.stderr = ""

    def events(self, domain: str | None = None) -> list[dict[str, Any]]:
        out = [json.loads(line)["data"] for line in _lines(self.events_path)]
        return [data for data in out if domain is None or data["domain"] == domain]

    def lines(self, domain: str | None = None) -> list[str]:
        return [describe(data) for data in self.events(domain)]

    def virsh_lines(self, domain: str | None = None, *, extensions: bool = False) -> list[str]:
        """What the virsh-style printer wrote, without virtbridge's extension events (their
        words are not virsh's) unless asked."""
        lines = _lines(self.virsh_path)
        if not extensions:
            flagged = [data["extension"] for data in self.events()]
            if len(flagged) == len(lines):
                lines = [line for line, ext in zip(lines, flagged, strict=True) if not ext]
        return [line for line in lines if domain is None or f" for domain '{domain}'" in line]

    def ctl(self, domain: str, verb: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
        return virtbridge("ctl", "--socket", str(self.socket), domain, verb, timeout=timeout)

    def domains(self) -> dict[str, dict[str, Any]]:
        """``virtbridge status --domains --json``: name → the engine's view of the domain."""
        done = virtbridge("status", "--socket", str(self.socket), "--domains", "--json")
        assert done.returncode == 0, done.stderr
        return {view["name"]: view for view in json.loads(done.stdout)["domain_states"]}

    def wait_ready(self) -> None:
        until(lambda: self.socket.exists() or self.process.poll() is not None, "control socket")
        if self.process.poll() is not None:
            raise AssertionError(f"the bridge stopped: {self.stop()}")

    def stop(self) -> str:
        """SIGTERM, bounded; its standard error."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            _, err = self.process.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            _, err = self.process.communicate(timeout=5)
        self.stderr += err or ""
        return self.stderr


def sync(connection: Any, name: str, *readers: Callable[[str], list[str]]) -> None:
    """Define and undefine ``name``; wait until every reader shows its UNDEFINED."""
    connection.defineXML(MARKER_XML.format(name=name)).undefine()
    for read in readers:
        until(
            lambda read=read: any("Undefined" in line for line in read(name)),  # type: ignore[misc]
            lambda read=read: f"{name!r} undefined in {read(None)[-5:]}",  # type: ignore[misc]
        )


def describe(data: dict[str, Any]) -> str:
    """``EVENT/DETAIL [e/d] -> STATE/REASON [s/r]`` (other kinds by name), from ``data``."""
    if data["kind"] == "lifecycle":
        head = f"{data['event']}/{data['detail']} [{data['event_code']}/{data['detail_code']}]"
    elif data["kind"] in ("pm-suspend", "pm-wakeup", "pm-suspend-disk"):
        head = f"{data['kind'].upper()}/{data['payload']['reason']}"
    else:
        head = data["kind"].upper()
    state = f"{data['state']}/{data['reason']} [{data['state_code']}/{data['reason_code']}]"
    return f"{head} -> {state}"


def heads(lines: Iterable[str]) -> list[str]:
    """Only what the event is (``SHUTDOWN/GUEST [6/1]``), without the state after it."""
    return [line.split(" -> ")[0] for line in lines]


def fold(lines: Iterable[str]) -> list[str]:
    """Each run of REBOOT lines as one ``REBOOT+`` (SeaBIOS' extra resets vary in number)."""
    out: list[str] = []
    for line in lines:
        key = "REBOOT+" if line.split(" -> ")[0] == "REBOOT" or "'reboot'" in line else line
        if key == "REBOOT+" and out and out[-1] == key:
            continue
        out.append(key)
    return out


def kill(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
