"""What is wrong with a NATS setup is said clearly: credentials, TLS, a missing stream, a
stream that does not cover the subjects; a configured stream is never changed unasked."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import nats
import pytest
from nats.js.api import StreamConfig

from tests.support.bridge import virtbridge, write_config
from tests.support.brokers import Certificates, NatsServer

SECRET = "n4ts-Secret!"


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    return Certificates(tmp_path_factory.mktemp("certs"))


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory, certs: Certificates) -> Iterator[NatsServer]:
    """JetStream behind TLS and a password."""
    server = NatsServer(
        tmp_path_factory.mktemp("secured"),
        extra=[
            f'authorization {{ user: bridge, password: "{SECRET}" }}',
            "tls {",
            f'  cert_file: "{certs.path("server.crt")}"',
            f'  key_file: "{certs.path("server.key")}"',
            "}",
        ],
    )
    with server:
        yield server


@pytest.fixture(scope="module")
def plain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsServer]:
    with NatsServer(tmp_path_factory.mktemp("plain")) as server:
        yield server


def check(tmp_path: Path, **table: object) -> tuple[int, str]:
    config = write_config(
        tmp_path / "check.toml",
        state_dir=tmp_path / "state",
        host="hv01",
        sources=[],
        sinks=[{"type": "nats", "connect_timeout": 2.0, **table}],
    )
    result = virtbridge("check", "-c", str(config), "--connect", "-vv")
    return result.returncode, result.stdout + result.stderr


def test_tls_and_a_password_work(tmp_path: Path, secured: NatsServer, certs: Certificates) -> None:
    code, output = check(
        tmp_path,
        servers=f"tls://localhost:{secured.port}",
        tls_ca=str(certs.path("ca.crt")),
        user="bridge",
        password=SECRET,
        stream="CHECKED",
        create_stream=True,
    )
    assert code == 0, output
    assert "connected to localhost:" in output and "stream CHECKED (created)" in output
    assert SECRET not in output


@pytest.mark.parametrize(
    ("table", "expected"),
    [
        pytest.param(
            {"user": "bridge", "password": "wrong-one", "tls_ca": "ca.crt"},
            "refused the login",
            id="wrong-password",
        ),
        pytest.param(
            {"user": "bridge", "password": SECRET},
            "is not trusted",
            id="untrusted-certificate",
        ),
        pytest.param(
            {"user": "bridge", "password": SECRET, "tls_ca": "rogue-ca.crt"},
            "set tls_ca to the CA that signed it",
            id="foreign-ca",
        ),
    ],
)
def test_refusals_are_clear(
    tmp_path: Path, secured: NatsServer, certs: Certificates, table: dict[str, str], expected: str
) -> None:
    if "tls_ca" in table:
        table = {**table, "tls_ca": str(certs.path(table["tls_ca"]))}
    code, output = check(tmp_path, servers=f"tls://localhost:{secured.port}", **table)
    assert code == 1, output
    assert expected in output, output
    assert "wrong-one" not in output and SECRET not in output
    assert "Traceback" not in output


def test_an_unreachable_server(tmp_path: Path) -> None:
    code, output = check(tmp_path, servers="nats://127.0.0.1:1")
    assert code == 1
    assert "cannot connect to 127.0.0.1:1: connection refused" in output


def test_a_missing_stream_is_not_created_unasked(tmp_path: Path, plain: NatsServer) -> None:
    code, output = check(tmp_path, servers=plain.url, stream="NOPE")
    assert code == 1
    assert "stream 'NOPE' does not exist: create it with subjects 'virtbridge.>'" in output
    assert "or set create_stream = true" in output


def test_a_stream_that_does_not_cover_the_subjects(tmp_path: Path, plain: NatsServer) -> None:
    async def make() -> None:
        nc = await nats.connect(plain.url)
        await nc.jetstream().add_stream(StreamConfig(name="OTHER", subjects=["other.>"]))
        await nc.close()

    asyncio.run(make())
    code, output = check(tmp_path, servers=plain.url, stream="OTHER", state_bucket="")
    assert code == 1
    assert (
        "stream 'OTHER' (subjects: other.>) does not cover virtbridge.hv01.domain.*.*: add "
        "'virtbridge.>' to its subjects or set create_stream = true"
    ) in output

    async def subjects() -> list[str]:
        nc = await nats.connect(plain.url)
        info = await nc.jetstream().stream_info("OTHER")
        await nc.close()
        return list(info.config.subjects or [])

    assert asyncio.run(subjects()) == ["other.>"]  # untouched
    code, output = check(
        tmp_path, servers=plain.url, stream="OTHER", create_stream=True, state_bucket=""
    )
    assert code == 0, output
    assert asyncio.run(subjects()) == ["other.>", "virtbridge.>"]


def test_a_missing_bucket(tmp_path: Path, plain: NatsServer) -> None:
    code, output = check(tmp_path, servers=plain.url, state_bucket="absent")
    assert code == 1
    assert "state bucket 'absent' does not exist" in output


def test_no_jetstream(tmp_path: Path) -> None:
    with NatsServer(tmp_path / "core", jetstream=False) as core:
        code, output = check(tmp_path, servers=core.url, stream="S")
        assert code == 1
        assert "JetStream does not answer on this server" in output
        code, output = check(tmp_path, servers=core.url)  # core NATS, no bucket: fine
        assert code == 0, output
        assert "core NATS, at most once" in output


def test_configuration_mistakes(tmp_path: Path) -> None:
    for table, message in [
        ({"servers": "http://x"}, "servers: 'http://' is not a NATS URL"),
        ({"servers": "nats://u:p@host:4222"}, "servers: put credentials in user/password/token"),
        ({"subject_prefix": "a.*"}, "subject_prefix: must not contain *, > or white space"),
        ({"duplicate_window": "soon"}, 'duplicate_window: expected a duration such as "2m"'),
        ({"create_stream": True}, "create_stream: needs stream"),
    ]:
        config = write_config(
            tmp_path / "bad.toml",
            state_dir=tmp_path / "state",
            sources=[],
            sinks=[{"type": "nats", **table}],
        )
        result = virtbridge("check", "-c", str(config))
        assert result.returncode == 2, result.stdout
        assert message in result.stderr, result.stderr


def test_an_nkey_seed_file_logs_in(tmp_path: Path) -> None:
    """nkey_seed names a seed file: the server knows only the public key, the seed never
    appears in the output, and a seed the server does not know is refused clearly."""
    import os

    import nkeys

    def seed_file(name: str) -> tuple[Path, str, str]:
        seed = nkeys.encode_seed(os.urandom(32), nkeys.PREFIX_BYTE_USER)
        path = tmp_path / name
        path.write_bytes(seed + b"\n")
        path.chmod(0o600)
        public = nkeys.from_seed(bytearray(seed)).public_key.decode()
        return path, seed.decode(), public

    known, known_seed, public = seed_file("bridge.nk")
    stranger, _, _ = seed_file("stranger.nk")
    with NatsServer(
        tmp_path / "nkeys", extra=[f'authorization {{ users: [ {{ nkey: "{public}" }} ] }}']
    ) as server:
        code, output = check(tmp_path, servers=server.url, nkey_seed=str(known))
        assert code == 0, output
        assert "connected to 127.0.0.1:" in output
        assert known_seed not in output
        code, output = check(tmp_path, servers=server.url, nkey_seed=str(stranger))
        assert code != 0
        assert "refused the login" in output, output
