"""The ``domain-events`` printer: domain events as libvirt's own event printers show them.

Three output styles, each a faithful copy of a program people already parse the output of:
libvirt-python's ``examples/event-test.py`` (``python``), libvirt's
``examples/c/misc/event-test.c`` (``c``) and ``virsh event --all --loop`` (``virsh``).  The
formatting is pure and lives in :mod:`._formats` (``format_event``, ``STYLES``), with the
string tables in :mod:`._tables`.
"""

from __future__ import annotations

import virtbridge

from ._formats import STYLES, format_event
from ._sink import DomainEventsConfig, DomainEventsSink

__all__ = ["STYLES", "DomainEventsConfig", "DomainEventsSink", "format_event"]


@virtbridge.hookimpl
def virtbridge_sink_types() -> list[virtbridge.SinkType[DomainEventsConfig]]:
    return [
        virtbridge.SinkType(
            name="domain-events",
            config=DomainEventsConfig,
            create=DomainEventsSink,
            description="print events as libvirt's event-test.py, event-test.c or virsh event",
        )
    ]
