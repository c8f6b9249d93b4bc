"""``python -m virtbridge``: the same as the ``virtbridge`` command."""

from __future__ import annotations

from virtbridge.cli.main import main

raise SystemExit(main())
