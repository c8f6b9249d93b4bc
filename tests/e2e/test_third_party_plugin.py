"""A third-party plugin, installed as its own package, is found through its entry point."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "virtbridge-webhook"
TRACES = ROOT / "examples" / "traces"


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = tmp_path_factory.mktemp("site")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--target",
            str(target),
            str(EXAMPLE),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    return target


def virtbridge(args: list[str], site: Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(site)}
    return subprocess.run(
        [sys.executable, "-m", "virtbridge", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_installed_plugin_is_listed(installed: Path, tmp_path: Path) -> None:
    result = virtbridge(["plugins"], installed, tmp_path)
    assert result.returncode == 0, result.stderr
    assert "webhook: entry point virtbridge_webhook (virtbridge-webhook 0.1.0)" in result.stdout
    assert "sink type 'webhook'" in result.stdout


def test_the_installed_plugin_delivers(installed: Path, tmp_path: Path) -> None:
    received: list[dict[str, object]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers["Content-Length"])
            received.append(json.loads(self.rfile.read(length)))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        config = tmp_path / "bridge.toml"
        config.write_text(
            f'[bridge]\nstate_dir = "{tmp_path / "state"}"\n'
            f'[[sources]]\ntype = "replay"\npath = "{TRACES / "*.jsonl"}"\n'
            f'[[sinks]]\ntype = "webhook"\nurl = "http://127.0.0.1:{server.server_port}/hook"\n'
        )
        result = virtbridge(["run", "-c", str(config)], installed, tmp_path)
    finally:
        server.shutdown()
    assert result.returncode == 0, result.stderr
    assert received, "the webhook got nothing"
    assert {event["data"]["event"] for event in received} == {"CRASHED"}  # type: ignore[index]
    details = sorted({event["data"]["detail"] for event in received})  # type: ignore[index]
    assert details == ["CRASHLOADED", "PANICKED"]


def test_its_config_errors_are_reported_like_builtin_ones(installed: Path, tmp_path: Path) -> None:
    config = tmp_path / "bridge.toml"
    config.write_text('[[sinks]]\ntype = "webhook"\nurl = "ftp://x"\n')
    result = virtbridge(["check", "-c", str(config)], installed, tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().endswith("sinks[0].url: must start with http:// or https://")
