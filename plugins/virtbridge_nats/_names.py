"""Names in NATS subjects and in key-value keys (pure: no I/O).

Subjects: ``<prefix>.<host>.domain.<name>.<kind>``, every name through
:func:`virtbridge.escape_token` (``.``, ``*``, ``>`` and spaces never survive it).  NATS
limits a protocol line to 4 KiB by default, so a token longer than :data:`TOKEN_MAX`
characters is cut and ends in ``~`` and a hash of the whole name: still one token, still
unique, recognisably shortened (``~`` is never in an escaped token).

Key-value keys allow only ``[-/_=.A-Za-z0-9]``: ``%`` is out.  Keys use the same rule with
``=`` in place of ``%`` (``a/b`` → ``a=2Fb``), host and name joined by ``.``: reversible with
:func:`name_of_key`, except that names longer than the cap end in ``/`` and a hash (``/`` is
never in an encoded name).  Consumers read the name from the value's ``domain`` field anyway.
"""

from __future__ import annotations

import hashlib

import virtbridge

TOKEN_MAX = 1024
"""Longest name token in a subject or key; longer ones are cut and hashed."""


def _digest(name: str) -> str:
    return hashlib.sha256(name.encode("utf-8")).hexdigest()[:16]


def subject_token(name: str) -> str:
    """One subject token for a host or domain name: never a wildcard or a separator."""
    token = virtbridge.escape_token(name)
    if len(token) <= TOKEN_MAX:
        return token
    return f"{token[: TOKEN_MAX - 18]}~{_digest(name)}"


def key_token(name: str) -> str:
    """``name`` as a key-value key token (``[-_=A-Za-z0-9]``, or ``/`` and a hash)."""
    token = virtbridge.escape_token(name).replace("%", "=")
    if len(token) <= TOKEN_MAX:
        return token
    return f"{token[: TOKEN_MAX - 18]}/{_digest(name)}"


def state_key(host: str, name: str) -> str:
    return f"{key_token(host)}.{key_token(name)}"


def name_of_key(token: str) -> str | None:
    """The name a key token was made from, or None for a shortened one."""
    if "/" in token:
        return None
    return virtbridge.unescape_token(token.replace("=", "%"))


def covers(pattern: str, subject: str) -> bool:
    """Whether every subject that ``subject`` (which may hold ``*`` tokens) stands for
    matches the NATS subject filter ``pattern``."""
    want = pattern.split(".")
    have = subject.split(".")
    for index, token in enumerate(want):
        if token == ">":
            return len(have) > index
        if index >= len(have):
            return False
        if token != "*" and token != have[index]:
            return False
    return len(want) == len(have)
