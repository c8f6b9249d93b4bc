"""QEMU Machine Protocol (QMP) sources for virtbridge.

* ``type = "qmp"``: attach to QMP sockets someone else manages (one socket, or a glob that is
  watched so new VMs are picked up and vanished ones dropped).  Observes; never kills.
* ``type = "qemu"``: launch and own one QEMU process as libvirt does (``-S -no-shutdown``),
  carrying out the engine's actions (SIGTERM after a finished shutdown, fake reboots, dumps).

```toml
[[sources]]
type = "qmp"
path = "/var/run/qemu-server/*.qmp"

[[sources]]
type = "qemu"
name = "vm1"
command = ["qemu-system-x86_64", "-m", "512", "-drive", "file=/srv/vm1.img,format=raw"]
on_crash = "restart"
shutdown_timeout = 120
```
"""

from __future__ import annotations

from typing import Any

import virtbridge

from ._attach import QmpAttachConfig, QmpAttachSource
from ._client import DEFAULT_LINE_LIMIT, EventMessage, QmpClient, QmpStats, QmpTimestamp
from ._errors import QmpCommandError, QmpConnectionError, QmpEof, QmpError, QmpTimeout
from ._monitor import MonitorSession
from ._recorder import recorded
from ._supervisor import QemuConfig, QemuSource

__all__ = [
    "DEFAULT_LINE_LIMIT",
    "EventMessage",
    "MonitorSession",
    "QemuConfig",
    "QemuSource",
    "QmpAttachConfig",
    "QmpAttachSource",
    "QmpClient",
    "QmpCommandError",
    "QmpConnectionError",
    "QmpEof",
    "QmpError",
    "QmpStats",
    "QmpTimeout",
    "QmpTimestamp",
]


@virtbridge.hookimpl
def virtbridge_source_types() -> list[virtbridge.SourceType[Any]]:
    return [
        virtbridge.SourceType(
            name="qmp",
            config=QmpAttachConfig,
            create=QmpAttachSource,
            description="attach to QMP sockets (a path or a watched glob); observes only",
        ),
        virtbridge.SourceType(
            name="qemu",
            config=QemuConfig,
            create=QemuSource,
            description="launch and own a QEMU process, applying on_poweroff/on_reboot/on_crash",
        ),
    ]


@virtbridge.hookimpl
def virtbridge_recorder_types() -> list[virtbridge.RecorderType]:
    return [
        virtbridge.RecorderType(
            name="qmp",
            open=recorded,
            description="a live QMP monitor (unix socket path or host:port)",
        )
    ]
