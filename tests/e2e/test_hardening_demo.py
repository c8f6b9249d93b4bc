"""``virtbridge run`` without a configuration is a demonstration: it writes nothing and
listens nowhere, so it never meets a real bridge (or another demo) on the machine."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.bridge import child_env
from virtbridge.cli import main as _cli
from virtbridge.config import load as _config
from virtbridge.runtime.bridge import Bridge
from virtbridge.runtime.control_socket import ControlServer
from virtbridge.runtime.metrics import MetricsServer


def test_the_demo_configuration_keeps_nothing_and_listens_nowhere() -> None:
    config = _config.load(None, data=_cli.demo_config())
    assert config.bridge.control_socket == "off"
    assert config.bridge.outbox == "memory"
    assert config.bridge.metrics == ""
    assert Bridge(config).control.control_path() is None


def test_a_demo_run_creates_no_state_directory_and_opens_no_socket(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    state = tmp_path / "state"
    monkeypatch.delenv("VIRTBRIDGE_CONFIG", raising=False)
    monkeypatch.setattr(_config, "default_state_dir", lambda: str(state))
    listening: list[str] = []
    control_start = ControlServer.start
    metrics_start = MetricsServer.start

    async def control(server: ControlServer) -> None:
        listening.append(f"control socket {server.path}")
        await control_start(server)

    async def metrics(server: MetricsServer) -> None:
        listening.append(f"metrics on {server.host}:{server.port}")
        await metrics_start(server)

    monkeypatch.setattr(ControlServer, "start", control)
    monkeypatch.setattr(MetricsServer, "start", metrics)
    args = _cli.build_parser().parse_args(["run"])
    assert args.config is None
    assert _cli.cmd_run(args) == 0
    assert "vm-acpi-shutdown" in capsys.readouterr().out
    assert listening == []
    assert not state.exists()


def test_two_demos_at_once_both_finish_without_a_warning(tmp_path: Path) -> None:
    home, work = tmp_path / "home", tmp_path / "work"
    home.mkdir()
    work.mkdir()
    env = child_env(HOME=str(home), XDG_STATE_HOME=str(home / "state"))
    env.pop("VIRTBRIDGE_CONFIG", None)
    demos = [
        subprocess.Popen(
            [sys.executable, "-m", "virtbridge", "run"],
            cwd=work,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    results = [demo.communicate(timeout=120) for demo in demos]
    for demo, (out, err) in zip(demos, results, strict=True):
        assert demo.returncode == 0, err
        assert "another bridge" not in err and "control socket" not in err, err
        assert "WARNING" not in err and "ERROR" not in err, err
        assert out.startswith("myDomainEventCallback1 EVENT: Domain vm-acpi-shutdown(1) ")
    assert results[0][0] == results[1][0]
    assert os.listdir(home) == [] and os.listdir(work) == []
