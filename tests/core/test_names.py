"""The escaping rule for names in topics and subjects."""

from __future__ import annotations

import re

from hypothesis import given
from hypothesis import strategies as st

from virtbridge.wire.names import escape_token, unescape_token


def test_examples() -> None:
    assert escape_token("vm-01_a") == "vm-01_a"
    assert escape_token("a/#") == "a%2F%23"
    assert escape_token("x.>") == "x%2E%3E"
    assert escape_token("+") == "%2B"
    assert escape_token("$SYS") == "%24SYS"
    assert escape_token("50%") == "50%25"
    assert escape_token("ünï code") == "%C3%BCn%C3%AF%20code"
    assert escape_token("") == "%"


@given(st.text())
def test_tokens_are_safe_and_reversible(name: str) -> None:
    token = escape_token(name)
    assert token
    assert re.fullmatch(r"[A-Za-z0-9_%-]+", token)  # no / + # . * > $ or whitespace
    assert unescape_token(token) == name


@given(st.text(), st.text())
def test_distinct_names_give_distinct_tokens(a: str, b: str) -> None:
    assert (escape_token(a) == escape_token(b)) == (a == b)


def test_a_final_newline_is_escaped() -> None:
    assert escape_token("vm1\n") == "vm1%0A"
    assert unescape_token(escape_token("vm1\n")) == "vm1\n"
