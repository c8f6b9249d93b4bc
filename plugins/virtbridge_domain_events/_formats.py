"""One event as the lines a libvirt event printer would print for it.

Pure formatting: no I/O, no clock (the ``virsh --timestamp`` prefix comes from the event's
own timestamp).  The styles, and the program each one imitates:

* ``"python"``: libvirt-python's ``examples/event-test.py``;
* ``"c"``: libvirt's ``examples/c/misc/event-test.c``;
* ``"virsh"``: ``virsh event --all --loop`` (and ``virsh qemu-monitor-event --loop`` for the
  generic QEMU monitor event).

Each program is reproduced with its quirks, because scripts parse this output: the Python
tables print an unknown index as its number, the C and virsh ones print ``unknown``; both
example programs register the lifecycle callback twice and so print two lines per lifecycle
event.  The tables themselves are in :mod:`._tables`.
"""

from __future__ import annotations

from virtbridge import PAYLOAD_TYPES, Event, EventID
from virtbridge_domain_events._examples import render_c, render_python
from virtbridge_domain_events._virsh import render_virsh

STYLES = ("python", "c", "virsh")
"""The accepted values of ``style``."""


def format_event(
    event: Event, style: str, *, monitor_events: bool = False, timestamp: bool = False
) -> list[str]:
    """Return the lines (without newlines) that ``style``'s program prints for ``event``.

    ``monitor_events``: print the generic QEMU monitor event (``EventID.QEMU_MONITOR``);
    without it that event gives no lines, as it does for programs that never register it.
    ``timestamp``: prefix the output as ``virsh event --timestamp`` does, from
    ``event.timestamp`` (the epoch when it has none); only the ``virsh`` style has it.

    Raises ``ValueError`` for an unknown style or ``timestamp`` outside the virsh style, and
    ``TypeError`` when the payload does not belong to ``event.kind``.
    """
    if style not in STYLES:
        raise ValueError(f"unknown style {style!r}: expected one of {', '.join(STYLES)}")
    if timestamp and style != "virsh":
        raise ValueError(f"timestamp=True needs style 'virsh' (style {style!r} has no timestamps)")
    expected = PAYLOAD_TYPES[event.kind]
    if not isinstance(event.payload, expected):
        raise TypeError(
            f"a {event.kind.name} event carries {expected.__name__}, "
            f"not {type(event.payload).__name__}"
        )
    if event.kind is EventID.QEMU_MONITOR and not monitor_events:
        return []
    if style == "python":
        text = render_python(event)
    elif style == "c":
        text = render_c(event)
    else:
        text = render_virsh(event, timestamp)
    # Each program ends every message with a newline; one message may hold several lines.
    return text.removesuffix("\n").split("\n")
