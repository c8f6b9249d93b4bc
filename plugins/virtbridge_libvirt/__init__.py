"""The ``libvirt`` source: bridge a host that already runs libvirt, with no QMP of its own.

```toml
[[sources]]
type = "libvirt"
uri = "qemu:///system"        # any libvirt URI
allow_commands = false        # true: `virtbridge ctl` verbs call libvirt (start, shutdown, ...)
```

Every domain event ID libvirt offers is subscribed to and forwarded with libvirt's codes
unchanged, each with the domain's state and reason afterwards.  The connection is read-only
unless ``allow_commands`` is set; it is kept alive (keepalive, close callback) and reopened
with jittered backoff when lost, after which every domain is looked at again and a domain
whose process ended meanwhile is reported (STOPPED/VANISHED, an extension: not under
``strict_libvirt``).

Needs the libvirt Python binding: ``pip install 'virtbridge[libvirt]'`` (the
libvirt-python package), or Debian's ``python3-libvirt`` in a venv made with
``--system-site-packages``.
"""

from __future__ import annotations

import virtbridge

from ._binding import BindingMissing
from ._config import LibvirtConfig
from ._source import LibvirtSource

__all__ = ["BindingMissing", "LibvirtConfig", "LibvirtSource"]


@virtbridge.hookimpl
def virtbridge_source_types() -> list[virtbridge.SourceType[LibvirtConfig]]:
    return [
        virtbridge.SourceType(
            name="libvirt",
            config=LibvirtConfig,
            create=LibvirtSource,
            description="subscribe to a libvirt connection's domain events (any URI)",
            extra="libvirt",
        )
    ]
