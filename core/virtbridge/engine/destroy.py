"""virDomainDestroy's first step, shared by the destroy intent (``control.py``) and a shutdown
request's escalation (``requests.py``).

The destroy itself emits nothing: QEMU's SHUTDOWN after the SIGTERM gives SHUTDOWN/HOST
(``qmp.shutdown``) and the exit STOPPED/DESTROYED (``qmp.process_gone``), as in §2.7.
"""

from __future__ import annotations

from virtbridge.engine import actions as act
from virtbridge.engine.domain import DomainRecord, Tx


def begin_destroy(tx: Tx, dom: DomainRecord) -> None:
    """destroy | any active → (unchanged until the exit) | — | Kill

    The domain is being destroyed: no fake reboot, no pending shutdown request."""
    dom.being_destroyed = True
    dom.fake_reboot = False
    dom.end_request()
    tx.act(act.Kill(domain=dom.name))
