"""The one escaping rule for names in topics and subjects.

Domain and host names come from the hypervisor: they are data, never syntax.  A domain
called ``a/#`` must not become an MQTT wildcard or an extra topic level, nor ``x.>`` a NATS
wildcard.  So every name is turned into a single token: ASCII letters, digits, ``_`` and
``-`` stay as they are; every other character (including ``%``, ``/``, ``.``, ``+``, ``#``,
``*``, ``>``, ``$``, spaces and non-ASCII) becomes ``%XX`` for each byte of its UTF-8 form,
upper-case hex.  The result is valid, wildcard-free and separator-free in both MQTT and NATS,
and :func:`unescape_token` reverses it exactly.
"""

from __future__ import annotations

import re
from urllib.parse import unquote

_SAFE = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")
_PLAIN = re.compile(r"[A-Za-z0-9_-]+")


def escape_token(name: str) -> str:
    """One topic level / subject token for ``name`` (never empty, never a wildcard)."""
    if name and _PLAIN.fullmatch(name):  # not match(): "$" would let a final newline in
        return name
    if not name:
        return "%"  # a lone "%" is what no non-empty name produces
    return "".join(
        char if char in _SAFE else "".join(f"%{byte:02X}" for byte in char.encode("utf-8"))
        for char in name
    )


def unescape_token(token: str) -> str:
    """The name a token was made from."""
    return "" if token == "%" else unquote(token, errors="strict")
