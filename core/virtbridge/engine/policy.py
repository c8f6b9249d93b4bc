"""Per-domain policies: what to do on poweroff, reboot, crash and an ignored shutdown request.

The action names and numeric values are libvirt's ``virDomainLifecycleAction``; the
combination rules are the qemu driver's (its define-time validation).
"""

from __future__ import annotations

from enum import Enum

import msgspec


class LifecycleAction(str, Enum):
    """``on_poweroff`` / ``on_reboot`` / ``on_crash`` values (libvirt domain XML spelling)."""

    DESTROY = "destroy"
    RESTART = "restart"
    RENAME_RESTART = "rename-restart"
    PRESERVE = "preserve"
    COREDUMP_DESTROY = "coredump-destroy"
    COREDUMP_RESTART = "coredump-restart"

    @property
    def code(self) -> int:
        """libvirt's numeric value (``VIR_DOMAIN_LIFECYCLE_ACTION_*``)."""
        return _ACTION_CODES[self]


_ACTION_CODES = {
    LifecycleAction.DESTROY: 0,
    LifecycleAction.RESTART: 1,
    LifecycleAction.RENAME_RESTART: 2,
    LifecycleAction.PRESERVE: 3,
    LifecycleAction.COREDUMP_DESTROY: 4,
    LifecycleAction.COREDUMP_RESTART: 5,
}


class ShutdownTimeoutAction(str, Enum):
    """Extension: what to do when a requested shutdown has not finished in time."""

    NONE = "none"
    DESTROY = "destroy"


RESTART_ACTIONS = frozenset({LifecycleAction.RESTART, LifecycleAction.COREDUMP_RESTART})
COREDUMP_ACTIONS = frozenset({LifecycleAction.COREDUMP_DESTROY, LifecycleAction.COREDUMP_RESTART})


class Policy(msgspec.Struct, frozen=True, gc=False, kw_only=True):
    """The lifecycle policy of one domain.  Defaults are libvirt's."""

    on_poweroff: LifecycleAction = LifecycleAction.DESTROY
    on_reboot: LifecycleAction = LifecycleAction.RESTART
    on_crash: LifecycleAction = LifecycleAction.DESTROY
    shutdown_timeout: float = 60.0
    """Seconds a guest gets to finish a requested shutdown; 0 disables the timeout."""
    on_shutdown_timeout: ShutdownTimeoutAction = ShutdownTimeoutAction.NONE

    def problems(self) -> list[str]:
        """What the qemu driver would reject about this policy, as messages (empty when valid)."""
        return [message for _, message in self.problems_by_key()]

    def problems_by_key(self) -> list[tuple[str, str]]:
        """Like :meth:`problems`, each with the policy key it is about."""
        found: list[tuple[str, str]] = []
        for key in ("on_poweroff", "on_reboot"):
            value: LifecycleAction = getattr(self, key)
            if value in COREDUMP_ACTIONS:
                found.append((key, f"{value.value!r} is only valid for on_crash"))
            elif value is LifecycleAction.PRESERVE:
                found.append(
                    (key, f"the qemu driver doesn't support the 'preserve' action for {key!r}")
                )
        for key in ("on_poweroff", "on_reboot", "on_crash"):
            if getattr(self, key) is LifecycleAction.RENAME_RESTART:
                found.append(
                    (
                        key,
                        f"the qemu driver doesn't support the 'rename-restart' action for {key!r}",
                    )
                )
        if (
            self.on_poweroff is LifecycleAction.RESTART
            and self.on_reboot is LifecycleAction.DESTROY
        ):
            found.append(
                (
                    "on_poweroff",
                    "on_poweroff = 'restart' cannot be combined with on_reboot = 'destroy'",
                )
            )
        if self.shutdown_timeout < 0:
            found.append(
                ("shutdown_timeout", "must be 0 (no timeout) or a positive number of seconds")
            )
        return found


DEFAULT_POLICY = Policy()
