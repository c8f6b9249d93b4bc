"""Every configuration mistake is reported with file, key and expectation; exit status 2."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from virtbridge.cli.main import main

HERE = Path(__file__).resolve().parent
PLUGINS = HERE.parent / "plugins"

CASES = [
    (
        '[bridge]\nhots = "x"\n',
        "bridge.hots: unknown key (known keys: host, state_dir, strict_libvirt, on_poweroff, on_reboot, on_crash, shutdown_timeout, on_shutdown_timeout, monitor_events, plugins, disable_plugins, drain_timeout, outbox, outbox_window, outbox_max_events, outbox_sync, metrics, control_socket)",
    ),
    (
        '[bridge]\nstrict_libvirt = "yes"\n',
        "bridge.strict_libvirt: expected true or false, got a string",
    ),
    (
        '[bridge]\non_crash = "explode"\n',
        "bridge.on_crash: expected one of 'destroy', 'restart', 'rename-restart', 'preserve', 'coredump-destroy', 'coredump-restart', got 'explode'",
    ),
    (
        '[bridge]\non_poweroff = "preserve"\n',
        "bridge.on_poweroff: the qemu driver doesn't support the 'preserve' action for 'on_poweroff'",
    ),
    (
        '[bridge]\non_poweroff = "restart"\non_reboot = "destroy"\n',
        "bridge.on_poweroff: on_poweroff = 'restart' cannot be combined with on_reboot = 'destroy'",
    ),
    (
        "[bridge]\nshutdown_timeout = -1\n",
        "bridge.shutdown_timeout: must be 0 (no timeout) or a positive number of seconds",
    ),
    (
        '[bridge]\nmonitor_events = "some"\n',
        "bridge.monitor_events: expected one of 'unhandled', 'all', got 'some'",
    ),
    (
        '[bridge]\nplugins = ["no_such_plugin_module"]\n',
        "bridge.plugins: cannot load plugin 'no_such_plugin_module': no such module",
    ),
    (
        '[bridg]\nhost = "x"\n',
        "bridg: unknown table (expected one of: bridge, domains, sources, sinks)",
    ),
    (
        '[bridge\nhost = "x"\n',
        "invalid TOML: Expected ']' at the end of a table declaration (at line 1, column 8)",
    ),
    (
        '[[sinks]]\ntype = "mqttt"\n',
        "sinks[0].type: unknown sink type 'mqttt' (known: domain-events, jsonl, log, mqtt, nats, null)",
    ),
    (
        '[[sinks]]\npath = "x"\n',
        'sinks[0]: missing "type" (one of: domain-events, jsonl, log, mqtt, nats, null)',
    ),
    (
        '[[sinks]]\ntype = "jsonl"\npaht = "x"\n',
        "sinks[0].paht: unknown key (known keys: path, fsync, batch_size, name, overflow, max_lag, on_reject, retry_max_interval)",
    ),
    ('[[sinks]]\ntype = "jsonl"\npath = 5\n', "sinks[0].path: expected a string, got an integer"),
    (
        '[[sinks]]\ntype = "mqtt"\nhomeassistant = true\nretain_state = false\n',
        "sinks[0].homeassistant: needs retain_state = true (discovery goes out with the "
        "retained states)",
    ),
    (
        '[[sinks]]\ntype = "jsonl"\npath = "${VIRTBRIDGE_TEST_UNSET}"\n',
        "sinks[0].path: environment variable VIRTBRIDGE_TEST_UNSET is not set (use ${VIRTBRIDGE_TEST_UNSET:-default} for a default)",
    ),
    (
        '[[sinks]]\ntype = "jsonl"\n[[sinks]]\ntype = "jsonl"\n',
        "sinks[1].name: duplicate sink name 'jsonl', also used by sinks[0] (give each one a distinct \"name\")",
    ),
    ('[sinks]\ntype = "jsonl"\n', "sinks: expected an array of tables ([[sinks]]), got a table"),
    (
        '[[sinks]]\ntype = "domain-events"\nformat = "perl"\n',
        "sinks[0].format: expected one of 'python', 'c', 'virsh', got 'perl'",
    ),
    (
        '[[sinks]]\ntype = "domain-events"\ntimestamp = true\n',
        "sinks[0].timestamp: only the virsh format has timestamps (virsh event --timestamp)",
    ),
    ('[[sources]]\ntype = "replay"\n', "sources[0].path: missing (required)"),
    (
        '[[sources]]\ntype = "replay"\npath = "/nonexistent/*.jsonl"\n',
        "sources[0].path: no trace file matches '/nonexistent/*.jsonl'",
    ),
    (
        '[[sources]]\ntype = "replay"\npath = "/etc/hostname"\nspeed = -2\n',
        "sources[0].speed: must be 0 (as fast as possible) or a positive factor",
    ),
    (
        '[[sources]]\ntype = "nope"\n',
        "sources[0].type: unknown source type 'nope' (known: libvirt, qemu, qmp, replay)",
    ),
    (
        '[domains.vm1]\non_reboot = "preserve"\n',
        "domains.vm1.on_reboot: the qemu driver doesn't support the 'preserve' action for 'on_reboot'",
    ),
    (
        '[domains."a/#"]\nshutdown_timeout = "soon"\n',
        'domains."a/#".shutdown_timeout: expected a number, got a string',
    ),
    (
        f'[bridge]\nplugins = ["{PLUGINS / "needs_extra_plugin.py"}"]\n[[sinks]]\ntype = "needy"\n',
        "sinks[0].type: sink type 'needy' needs the Python module 'virtbridge_test_missing_module': pip install 'virtbridge[needy]'",
    ),
    (
        f'[bridge]\nplugins = ["{PLUGINS / "typo_plugin.py"}"]\n',
        f"bridge.plugins: cannot load plugin '{PLUGINS / 'typo_plugin.py'}': unknown hook 'virtbridge_on_events'",
    ),
]


@pytest.mark.parametrize(("text", "message"), CASES, ids=[str(i) for i in range(len(CASES))])
def test_config_error(
    text: str,
    message: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("VIRTBRIDGE_TEST_UNSET", raising=False)
    path = tmp_path / "bad.toml"
    path.write_text(text)
    assert main(["check", "-c", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"virtbridge: configuration error: {path}: {message}" in err
    assert "Traceback" not in err


def test_typo_in_a_hook_name_is_named() -> None:
    from virtbridge import ConfigError
    from virtbridge.config.load import load

    with pytest.raises(ConfigError, match="unknown hook 'virtbridge_on_events'"):
        load(None, data={}, extra_plugins=[str(PLUGINS / "typo_plugin.py")])


def test_missing_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["run", "-c", str(tmp_path / "none.toml")]) == 2
    assert f"{tmp_path / 'none.toml'}: no such file" in capsys.readouterr().err


def test_real_process_exits_2_without_traceback(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text('[[sinks]]\ntype = "jsonl"\npath = 5\n')
    result = subprocess.run(
        [sys.executable, "-m", "virtbridge", "run", "-c", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr.strip().endswith("sinks[0].path: expected a string, got an integer")
    assert "Traceback" not in result.stderr


def test_env_interpolation_with_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from virtbridge.config.load import load

    monkeypatch.setenv("VB_TEST_OUT", str(tmp_path / "x.jsonl"))
    monkeypatch.delenv("VB_TEST_MISSING", raising=False)
    path = tmp_path / "ok.toml"
    path.write_text(
        '[bridge]\nhost = "${VB_TEST_MISSING:-h1}"\nstate_dir = "$${HOME}"\n'
        '[[sinks]]\ntype = "jsonl"\npath = "${VB_TEST_OUT}"\n'
    )
    config = load(str(path))
    assert config.bridge.host == "h1"
    assert config.bridge.state_dir == "${HOME}"
    assert config.sinks[0].config.path == str(tmp_path / "x.jsonl")  # type: ignore[attr-defined]
