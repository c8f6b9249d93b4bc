"""on_reboot = "destroy" wherever it is configured reaches QEMU (``set-action reboot=shutdown``,
libvirt's ``-action reboot=shutdown``): the domain's effective policy decides, as the engine
resolves it ([bridge] default, [domains."x"] override, the source's own keys), not only the
``qemu`` source's own key.  Before, a guest reboot under a [bridge] or [domains] on_reboot =
"destroy" rebooted the guest."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.plugins.qemu_harness import BOOTED, GUEST_SHUTDOWN, BridgeRun, run
from tests.plugins.qemu_processes import supervised
from virtbridge import (
    Engine,
    Intent,
    IntentKind,
    LifecycleAction,
    MonitorCommand,
    Policy,
    PolicyOverrides,
)

Images = dict[str, Path]


@pytest.mark.parametrize("where", ["bridge", "domains"])
def test_on_reboot_destroy_from_the_configuration_stops_a_rebooting_guest(
    qemu: Images, tmp_path: Path, where: str
) -> None:
    source = supervised(qemu, tmp_path, "reboot")  # no on_reboot of its own
    bridge = {"on_reboot": "destroy"} if where == "bridge" else None

    async def main() -> None:
        r = BridgeRun(tmp_path, sources=[source], bridge=bridge)
        if where == "domains":
            r.data["domains"] = {"vm": {"on_reboot": "destroy"}}
        async with r:
            await r.wait_for("vm", GUEST_SHUTDOWN[-1])
            await r.gone()
            await r.settle()
            assert r.lines() == BOOTED + GUEST_SHUTDOWN

    run(main())


def _start_commands(engine: Engine, policy: PolicyOverrides | None = None) -> list[object]:
    outcome = engine.feed(Intent(domain="vm", intent=IntentKind.START, policy=policy))
    return [
        (a.command, a.arguments) if isinstance(a, MonitorCommand) else a for a in outcome.actions
    ]


SET_REBOOT_SHUTDOWN = ("set-action", {"reboot": "shutdown"})


def test_the_engine_asks_for_the_reboot_action_of_the_effective_policy() -> None:
    destroy = Policy(on_reboot=LifecycleAction.DESTROY)
    assert _start_commands(Engine()) == [("cont", None)]
    assert _start_commands(Engine(policy=destroy)) == [SET_REBOOT_SHUTDOWN, ("cont", None)]
    per_domain = Engine()
    per_domain.set_policy("vm", destroy)
    assert _start_commands(per_domain) == [SET_REBOOT_SHUTDOWN, ("cont", None)]
    # The source's own key wins over the defaults, both ways.
    overridden = PolicyOverrides(on_reboot=LifecycleAction.RESTART)
    assert _start_commands(Engine(policy=destroy), overridden) == [("cont", None)]
    own = PolicyOverrides(on_reboot=LifecycleAction.DESTROY)
    assert _start_commands(Engine(), own) == [SET_REBOOT_SHUTDOWN, ("cont", None)]
