"""A test plugin with a misspelled hook name."""

from __future__ import annotations

import virtbridge


@virtbridge.hookimpl
def virtbridge_on_events(event: object) -> None:
    pass
