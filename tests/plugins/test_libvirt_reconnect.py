"""libvirtd stopped and started again under running domains, one of which dies meanwhile.

Two bridges watch one libvirtd (``tests/support/libvirtd``): one as configured by default,
one with ``strict_libvirt``.  libvirtd is stopped; the QEMU of one domain is killed while it
is down; libvirtd is started again.  Both sources must reconnect and register their callbacks
again (a suspend afterwards is reported), the default one must report the domain that died
(STOPPED/VANISHED, a marked extension: libvirt's own clients hear nothing), the strict one
must not, and both must end with every domain in the state libvirt reports.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.guests import boot_marker, write_images
from tests.support.libvirt_runs import MARKER_XML, BridgeProcess, heads, kill, sync, until
from tests.support.libvirtd import (
    Libvirtd,
    LibvirtdUnavailable,
    domain_xml,
    require_binding,
    require_libvirtd,
    unavailable,
)
from tests.support.qemu import require_qemu, serial_count

libvirt = require_binding()

QUICK = {"reconnect_min": 0.2, "reconnect_max": 1.0, "look_again": [0.5, 2.0]}
VANISHED = "STOPPED/VANISHED [5/100]"


@pytest.fixture
def daemon() -> Iterator[Libvirtd]:
    require_qemu()
    require_libvirtd()
    try:
        with Libvirtd() as running:
            yield running
    except LibvirtdUnavailable as exc:
        unavailable(str(exc))


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] != "Z"


def test_reconnect_reports_a_domain_that_died_while_libvirtd_was_down(
    daemon: Libvirtd, tmp_path: Path
) -> None:
    images = write_images(tmp_path / "guests", ("idle",))
    source = {"type": "libvirt", "uri": daemon.uri, **QUICK}
    plain = BridgeProcess(tmp_path / "plain", [source])
    strict = BridgeProcess(tmp_path / "strict", [source], strict_libvirt=True)
    conn: Any = libvirt.open(daemon.uri)
    domains: dict[str, Any] = {}
    try:
        for bridge in (plain, strict):
            bridge.wait_ready()
        sync(conn, "marker-1", plain.virsh_lines, strict.virsh_lines)
        for name in ("lv-keeps", "lv-dies"):
            image = tmp_path / f"{name}.img"
            shutil.copy(images["idle"], image)
            serial = tmp_path / f"{name}.serial"
            domains[name] = conn.defineXML(domain_xml(name, image, serial))
            domains[name].create()
            until(lambda serial=serial: serial_count(serial, boot_marker("idle")) >= 1, "boot")
        for bridge in (plain, strict):
            until(
                lambda bridge=bridge: "STARTED/BOOTED [2/0]" in heads(bridge.lines("lv-dies")),
                lambda bridge=bridge: str(bridge.lines()),
            )
        victim = daemon.qemu_pid("lv-dies")
        assert victim is not None
        conn.close()
        conn = None

        daemon.stop_daemon()
        kill(victim)
        until(lambda: not _alive(victim), "the QEMU of lv-dies to be gone")
        time.sleep(1.5)  # the sources retry meanwhile: a lag, not a loss
        daemon.start_daemon()

        conn = libvirt.open(daemon.uri)
        domains = {name: conn.lookupByName(name) for name in ("lv-keeps", "lv-dies")}
        until(lambda: not domains["lv-dies"].isActive(), "libvirt to notice lv-dies is gone")
        until(
            lambda: VANISHED in heads(plain.lines("lv-dies")),
            lambda: f"{VANISHED} in {plain.lines()}",
        )
        vanished = [data for data in plain.events("lv-dies") if data["detail_code"] == 100]
        assert len(vanished) == 1 and vanished[0]["extension"] is True
        assert (vanished[0]["state"], vanished[0]["reason"]) == ("SHUTOFF", "CRASHED")

        # Both sources are subscribed again (each retries on its own backoff)...
        probes = iter(range(1, 100))

        def both_hear_libvirt() -> bool:
            name = f"probe-{next(probes)}"
            conn.defineXML(MARKER_XML.format(name=name)).undefine()
            time.sleep(0.3)
            return all(
                any("Undefined" in line for line in bridge.virsh_lines(name))
                for bridge in (plain, strict)
            )

        until(both_hear_libvirt, "both bridges to hear libvirt again")
        # ... so a suspend now reaches both.
        domains["lv-keeps"].suspend()
        for bridge in (plain, strict):
            until(
                lambda bridge=bridge: "SUSPENDED/PAUSED [3/0]" in heads(bridge.lines("lv-keeps")),
                lambda bridge=bridge: str(bridge.lines()),
            )
        sync(conn, "marker-2", plain.virsh_lines, strict.virsh_lines)

        assert VANISHED not in heads(strict.lines())
        assert all(not data["extension"] for data in strict.events())
        for bridge in (plain, strict):
            views = bridge.domains()
            for name, dom in domains.items():
                state, reason = dom.state()
                assert (views[name]["state"], views[name]["reason"]) == (state, reason), (
                    name,
                    views[name],
                    bridge.lines(),
                )
        assert tuple(domains["lv-dies"].state()) == (5, 3)  # SHUTOFF/CRASHED
        assert tuple(domains["lv-keeps"].state()) == (3, 1)  # PAUSED/USER
    finally:
        for bridge in (plain, strict):
            bridge.stop()
        if conn is not None:
            for dom in domains.values():
                if dom.isActive():
                    dom.destroy()
                dom.undefine()
            conn.close()
