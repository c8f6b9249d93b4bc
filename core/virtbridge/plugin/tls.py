"""TLS for plugins that talk to brokers: one way to turn ``tls_ca``/``tls_cert``/``tls_key``/
``tls_insecure`` settings into an :class:`ssl.SSLContext`, with errors that name the key."""

from __future__ import annotations

import os
import ssl


def tls_context(
    ca: str = "", cert: str = "", key: str = "", *, insecure: bool = False
) -> ssl.SSLContext:
    """A client context that verifies the server against ``ca`` (a PEM file; empty: the
    system's CAs), presents ``cert``/``key`` when given, and with ``insecure`` accepts a
    certificate for another name (its chain is still verified).

    Files are read now, so a missing or unreadable one is reported at start: ValueError
    naming the key (``tls_ca: no such file: ...``)."""
    context = ssl.create_default_context(cafile=_readable(ca, "tls_ca"))
    if cert:
        try:
            context.load_cert_chain(_readable(cert, "tls_cert") or "", _readable(key, "tls_key"))
        except ssl.SSLError as exc:
            raise ValueError(f"tls_cert/tls_key: cannot use them: {exc.reason or exc}") from None
    if insecure:
        context.check_hostname = False
    return context


def _readable(path: str, key: str) -> str | None:
    if not path:
        return None
    expanded = os.path.expanduser(path)
    if not os.path.isfile(expanded):
        raise ValueError(f"{key}: no such file: {expanded}")
    if not os.access(expanded, os.R_OK):
        raise ValueError(f"{key}: cannot read {expanded}")
    return expanded
