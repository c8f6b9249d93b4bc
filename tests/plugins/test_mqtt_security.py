"""The MQTT sink with TLS, client certificates, passwords and websockets, against a real
mosquitto: what works works, what is wrong fails with a message that says what to do, a
refused bridge keeps retrying and loses nothing, and no secret ever reaches a log line."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.bridge import spawn, virtbridge, write_config
from tests.support.brokers import Certificates, Mosquitto, password_file
from tests.support.subscriber import Subscriber

ROOT = Path(__file__).resolve().parents[2]
TRACE = ROOT / "examples" / "traces" / "poweroff.jsonl"
SECRET = "s3cret-Pa55word!"
WRONG = "not-the-password-42"


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    return Certificates(tmp_path_factory.mktemp("certs"))


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory, certs: Certificates) -> Iterator[Mosquitto]:
    directory = tmp_path_factory.mktemp("mosquitto")
    passwords = password_file(directory / "passwd", {"bridge": SECRET})
    tls = [
        f"cafile {certs.path('ca.crt')}",
        f"certfile {certs.path('server.crt')}",
        f"keyfile {certs.path('server.key')}",
    ]
    listeners = {
        "plain": ["allow_anonymous true"],
        "tls": [*tls, "allow_anonymous false", f"password_file {passwords}"],
        "mtls": [
            *tls,
            "require_certificate true",
            "use_identity_as_username true",
            "allow_anonymous false",
        ],
        "ws": ["protocol websockets", "allow_anonymous true"],
        "wss": ["protocol websockets", *tls, "allow_anonymous false", f"password_file {passwords}"],
    }
    with Mosquitto(directory, listeners=listeners, persistence=False) as running:
        running.passwords = passwords  # type: ignore[attr-defined]
        yield running


def check(tmp_path: Path, **table: object) -> tuple[int, str]:
    config = write_config(
        tmp_path / "check.toml",
        state_dir=tmp_path / "state",
        sources=[],
        sinks=[{"type": "mqtt", "connect_timeout": 3.0, **table}],
    )
    result = virtbridge("check", "-c", str(config), "--connect", "-vv")
    return result.returncode, result.stdout + result.stderr


def test_tls_with_a_password_works(tmp_path: Path, broker: Mosquitto, certs: Certificates) -> None:
    code, output = check(
        tmp_path,
        url=broker.url("tls", "mqtts").replace("127.0.0.1", "localhost"),
        tls_ca=str(certs.path("ca.crt")),
        username="bridge",
        password=SECRET,
    )
    assert code == 0, output
    assert "connected to localhost:" in output and "TLS" in output
    assert SECRET not in output


@pytest.mark.parametrize(
    ("table", "expected"),
    [
        pytest.param(
            {"tls_ca": "ca.crt", "username": "bridge", "password": WRONG},
            "refused the login (Not authorized): check username and password",
            id="wrong-password",
        ),
        pytest.param(
            {"tls_ca": "ca.crt"},
            "refused the login",
            id="no-credentials",
        ),
        pytest.param(
            {"username": "bridge", "password": SECRET},
            "is not trusted (self-signed certificate in certificate chain); set tls_ca",
            id="untrusted-certificate",
        ),
        pytest.param(
            {"tls_ca": "rogue-ca.crt", "username": "bridge", "password": SECRET},
            "set tls_ca to the CA that signed it",
            id="foreign-ca",
        ),
    ],
)
def test_tls_failures_are_clear(
    tmp_path: Path,
    broker: Mosquitto,
    certs: Certificates,
    table: dict[str, str],
    expected: str,
) -> None:
    if "tls_ca" in table:
        table = {**table, "tls_ca": str(certs.path(table["tls_ca"]))}
    code, output = check(tmp_path, url=broker.url("tls", "mqtts"), **table)
    assert code == 1, output
    assert expected in output, output
    assert SECRET not in output and WRONG not in output


def test_client_certificates(tmp_path: Path, broker: Mosquitto, certs: Certificates) -> None:
    url = broker.url("mtls", "mqtts")
    ca = str(certs.path("ca.crt"))
    code, output = check(
        tmp_path,
        url=url,
        tls_ca=ca,
        tls_cert=str(certs.path("client.crt")),
        tls_key=str(certs.path("client.key")),
    )
    assert code == 0, output
    code, output = check(tmp_path, url=url, tls_ca=ca)
    assert code == 1 and "client certificate" in output, output
    code, output = check(
        tmp_path,
        url=url,
        tls_ca=ca,
        tls_cert=str(certs.path("rogue-client.crt")),
        tls_key=str(certs.path("rogue-client.key")),
    )
    assert code == 1, output
    assert "unknown ca" in output.lower() or "does not trust" in output, output


def test_no_silent_downgrade(tmp_path: Path, broker: Mosquitto, certs: Certificates) -> None:
    code, output = check(tmp_path, url=broker.url("tls", "mqtt"))  # plain text to a TLS port
    assert code == 1 and "is it a TLS port? then use mqtts://" in output, output
    code, output = check(
        tmp_path, url=broker.url("plain", "mqtts"), tls_ca=str(certs.path("ca.crt"))
    )
    assert code == 1 and "is it a plain-text port? then use mqtt://" in output, output
    config = write_config(
        tmp_path / "bad.toml",
        state_dir=tmp_path / "state",
        sources=[],
        sinks=[{"type": "mqtt", "url": broker.url("tls"), "tls_ca": str(certs.path("ca.crt"))}],
    )
    result = virtbridge("check", "-c", str(config))
    assert result.returncode == 2
    assert (
        "sinks[0].tls_ca: set, but url is mqtt:// (no TLS); use mqtts:// or wss://" in result.stderr
    )


@pytest.mark.parametrize("listener", ["ws", "wss"])
def test_websockets(tmp_path: Path, broker: Mosquitto, certs: Certificates, listener: str) -> None:
    table: dict[str, object] = {"type": "mqtt", "url": broker.url(listener, listener) + "/mqtt"}
    if listener == "wss":
        table.update(tls_ca=str(certs.path("ca.crt")), username="bridge", password=SECRET)
    config = write_config(
        tmp_path / "bridge.toml",
        state_dir=tmp_path / "state",
        host="hv-ws",
        sources=[{"type": "replay", "path": str(TRACE), "progress": False}],
        sinks=[table],
    )
    with Subscriber(broker.port, ["virtbridge/hv-ws/domain/+/lifecycle"]) as subscriber:
        bridge = spawn(config)
        _, err = bridge.communicate(timeout=60)
        assert bridge.returncode == 0, err
        messages = subscriber.wait_for(lambda m: len(m) >= 4, 10)
    lifecycle = [json.loads(m.payload)["data"]["event"] for m in messages]
    assert lifecycle == ["RESUMED", "STARTED", "SHUTDOWN", "STOPPED"]


def test_a_refused_bridge_retries_and_loses_nothing(
    tmp_path: Path, broker: Mosquitto, certs: Certificates
) -> None:
    """The bridge starts with a password the broker does not know: status says why, the
    sink retries; once the broker accepts the password every event arrives.  No log line or
    status field ever shows the password."""
    socket_path = tmp_path / "control.sock"
    config = write_config(
        tmp_path / "bridge.toml",
        state_dir=tmp_path / "state",
        host="hv-auth",
        control_socket=str(socket_path),
        drain_timeout=60.0,
        sources=[{"type": "replay", "path": str(TRACE), "progress": False}],
        sinks=[
            {
                "type": "mqtt",
                "url": broker.url("tls", "mqtts"),
                "tls_ca": str(certs.path("ca.crt")),
                "username": "late",
                "password": "${LATE_PASSWORD}",
                "reconnect_max": 0.5,
            }
        ],
    )
    import os

    os.environ["LATE_PASSWORD"] = WRONG
    try:
        with Subscriber(broker.port, ["virtbridge/hv-auth/domain/+/lifecycle"]) as subscriber:
            bridge = spawn(config, "-vv")
            try:
                status: dict[str, object] = {}
                deadline = time.monotonic() + 20
                while time.monotonic() < deadline:
                    result = virtbridge("status", "--json", "--socket", str(socket_path))
                    if result.returncode == 0:
                        status = json.loads(result.stdout)["sinks"]["mqtt"]
                        if status.get("last_error"):
                            break
                    time.sleep(0.2)
                assert status.get("connected") is False, status
                assert "refused the login" in str(status["last_error"]), status
                assert WRONG not in json.dumps(status)
                assert subscriber.snapshot() == []
                # The operator adds the user on the broker: the bridge's retries get through.
                password_file(broker.passwords, {"bridge": SECRET, "late": WRONG})  # type: ignore[attr-defined]
                broker.reload()
                _, err = bridge.communicate(timeout=60)
            finally:
                if bridge.poll() is None:
                    bridge.kill()
                    bridge.wait()
            assert bridge.returncode == 0, err
            messages = subscriber.wait_for(lambda m: len(m) >= 4, 10)
    finally:
        os.environ.pop("LATE_PASSWORD", None)
        password_file(broker.passwords, {"bridge": SECRET})  # type: ignore[attr-defined]
        broker.reload()
    assert [json.loads(m.payload)["data"]["event"] for m in messages] == [
        "RESUMED",
        "STARTED",
        "SHUTDOWN",
        "STOPPED",
    ]
    assert "refused the login" in err
    assert WRONG not in err and SECRET not in err
