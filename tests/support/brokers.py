"""Real brokers for the tests: mosquitto processes on free loopback ports, certificates made
with openssl, and a TCP proxy that can cut a client off its broker.

Every wait has a bound: a broker that does not come up is an error after a few seconds.
A test that needs a binary it cannot find fails under CI (``CI=true``) and skips elsewhere.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

MOSQUITTO = ("mosquitto", "/usr/sbin/mosquitto")


def require_binary(candidates: tuple[str, ...], package: str) -> str:
    """The first binary found; fails the test under CI, skips it elsewhere."""
    import pytest

    for name in candidates:
        found = shutil.which(name) or (
            name if os.path.isabs(name) and os.access(name, os.X_OK) else None
        )
        if found:
            return found
    reason = f"{candidates[0]} is not installed (Debian: apt-get install {package})"
    if os.environ.get("CI") == "true":
        pytest.fail(reason, pytrace=False)
    pytest.skip(reason)


_ISSUED: set[int] = set()


def free_port() -> int:
    """A loopback port nothing listens on, never one this process was given before (a
    cluster's nodes take theirs one after the other: two must not get the same)."""
    while True:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = int(probe.getsockname()[1])
        if port not in _ISSUED:
            _ISSUED.add(port)
            return port


def wait_for_port(
    port: int, timeout: float = 10.0, process: subprocess.Popen[bytes] | None = None
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"the server exited with {process.returncode} before listening")
        with socket.socket() as probe:
            probe.settimeout(0.2)
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.02)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout} s")


@dataclass
class Mosquitto:
    """One mosquitto process with listeners the test describes; stop/start keep its
    configuration, ports and (with ``persistence``) its stored sessions."""

    directory: Path
    listeners: dict[str, list[str]] = field(default_factory=dict)
    """name → lines of that listener's section (the port line is added)."""
    persistence: bool = True
    extra: list[str] = field(default_factory=list)
    ports: dict[str, int] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = None

    def __post_init__(self) -> None:
        self.binary = require_binary(MOSQUITTO, "mosquitto")
        self.directory.mkdir(parents=True, exist_ok=True)
        if not self.listeners:
            self.listeners = {"plain": ["allow_anonymous true"]}
        for name in self.listeners:
            self.ports.setdefault(name, free_port())
        lines = [
            "per_listener_settings true",
            # As root mosquitto would drop to the mosquitto user, who cannot read the test's
            # private temporary files.
            "user root" if os.geteuid() == 0 else "",
            f"log_dest file {self.directory / 'mosquitto.log'}",
            "log_type error",
            "log_type warning",
            "log_type notice",
            "log_type information",
            "set_tcp_nodelay true",
            "max_queued_messages 0",
            "max_inflight_messages 0",
            "max_keepalive 65535",
        ]
        if self.persistence:
            lines += [
                "persistence true",
                f"persistence_location {self.directory}/",
                "autosave_interval 1",
            ]
        lines += self.extra
        for name, section in self.listeners.items():
            lines.append(f"listener {self.ports[name]} 127.0.0.1")
            lines += section
        self.config = self.directory / "mosquitto.conf"
        self.config.write_text("\n".join(line for line in lines if line) + "\n")

    @property
    def port(self) -> int:
        return self.ports[next(iter(self.listeners))]

    def url(self, listener: str | None = None, scheme: str = "mqtt") -> str:
        port = self.ports[listener] if listener else self.port
        return f"{scheme}://127.0.0.1:{port}"

    def start(self) -> Mosquitto:
        self.process = subprocess.Popen(
            [self.binary, "-c", str(self.config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        for port in self.ports.values():
            wait_for_port(port, 10.0, self.process)
        return self

    def stop(self, sig: int = signal.SIGTERM) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(sig)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        if process.stderr is not None:
            process.stderr.close()

    def restart(self, down: float = 0.5) -> None:
        self.stop()
        time.sleep(down)
        self.start()

    def reload(self) -> None:
        """SIGHUP: mosquitto reads its password file again."""
        assert self.process is not None
        self.process.send_signal(signal.SIGHUP)

    def log(self) -> str:
        path = self.directory / "mosquitto.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def __enter__(self) -> Mosquitto:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def password_file(path: Path, users: dict[str, str]) -> Path:
    """A mosquitto password file (hashed by mosquitto_passwd)."""
    tool = require_binary(("mosquitto_passwd", "/usr/bin/mosquitto_passwd"), "mosquitto")
    path.write_text("")
    for user, password in users.items():
        subprocess.run([tool, "-b", str(path), user, password], check=True, capture_output=True)
    return path


@dataclass
class Certificates:
    """A CA, a server certificate for localhost/127.0.0.1, a client certificate, and a
    rogue CA with a client certificate of its own (for refusals)."""

    directory: Path

    def __post_init__(self) -> None:
        openssl = require_binary(("openssl",), "openssl")
        d = self.directory
        d.mkdir(parents=True, exist_ok=True)

        def run(*args: str) -> None:
            subprocess.run([openssl, *args], cwd=d, check=True, capture_output=True)

        for ca in ("ca", "rogue-ca"):
            run(
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "30",
                "-subj",
                f"/CN=virtbridge-test-{ca}",
                "-keyout",
                f"{ca}.key",
                "-out",
                f"{ca}.crt",
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign,cRLSign",
            )
        (d / "server.ext").write_text(
            "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n"
            "basicConstraints=CA:FALSE\n"
        )
        (d / "client.ext").write_text("extendedKeyUsage=clientAuth\nbasicConstraints=CA:FALSE\n")
        for name, ca, subject, ext in (
            ("server", "ca", "/CN=localhost", "server.ext"),
            ("client", "ca", "/CN=device-01", "client.ext"),
            ("rogue-client", "rogue-ca", "/CN=intruder", "client.ext"),
        ):
            run(
                "req",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-subj",
                subject,
                "-keyout",
                f"{name}.key",
                "-out",
                f"{name}.csr",
            )
            run(
                "x509",
                "-req",
                "-in",
                f"{name}.csr",
                "-CA",
                f"{ca}.crt",
                "-CAkey",
                f"{ca}.key",
                "-CAcreateserial",
                "-days",
                "30",
                "-sha256",
                "-extfile",
                ext,
                "-out",
                f"{name}.crt",
            )

    def path(self, name: str) -> Path:
        return self.directory / name


class Proxy:
    """A TCP proxy on a free port to ``target``; :meth:`cut` drops every connection and
    refuses new ones until :meth:`restore` (a network cut, as a client sees it)."""

    def __init__(self, target_port: int) -> None:
        self.target = target_port
        self.port = free_port()
        self.open = True
        self._loop = asyncio.new_event_loop()
        self._server: asyncio.AbstractServer | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self._call(self._start())

    def _call(self, coro: object) -> object:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(10)  # type: ignore[arg-type]

    async def _start(self) -> None:
        self._server = await asyncio.start_server(self._client, "127.0.0.1", self.port)

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not self.open:
            writer.close()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target)
        except OSError:
            writer.close()
            return
        self._writers |= {writer, up_writer}

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(Exception):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            with contextlib.suppress(Exception):
                dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        self._writers -= {writer, up_writer}

    async def _cut(self) -> None:
        for writer in list(self._writers):
            with contextlib.suppress(Exception):
                writer.transport.abort()
        self._writers.clear()

    def cut(self) -> None:
        self.open = False
        self._call(self._cut())

    def restore(self) -> None:
        self.open = True

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._call(self._cut())
        if self._server is not None:
            self._loop.call_soon_threadsafe(self._server.close)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)


@contextlib.contextmanager
def proxied(port: int) -> Iterator[Proxy]:
    proxy = Proxy(port)
    try:
        yield proxy
    finally:
        proxy.close()


NATS_SERVER = ("nats-server", "/usr/sbin/nats-server")


@dataclass
class NatsServer:
    """One nats-server process with JetStream, from a configuration file it writes; with
    ``routes`` (other nodes' cluster ports) it is a node of a cluster."""

    directory: Path
    name: str = "n1"
    port: int = 0
    cluster_port: int = 0
    monitor_port: int = 0
    routes: list[int] = field(default_factory=list)
    extra: list[str] = field(default_factory=list)
    """Lines added to the configuration (authorization, tls blocks)."""
    jetstream: bool = True
    process: subprocess.Popen[bytes] | None = None

    def __post_init__(self) -> None:
        self.binary = require_binary(NATS_SERVER, "nats-server")
        self.directory.mkdir(parents=True, exist_ok=True)
        self.port = self.port or free_port()
        self.monitor_port = self.monitor_port or free_port()
        lines = [
            f"server_name: {self.name}",
            f"listen: 127.0.0.1:{self.port}",
            f"http: 127.0.0.1:{self.monitor_port}",
            f'log_file: "{self.directory / "server.log"}"',
        ]
        if self.jetstream:
            lines.append(f'jetstream {{ store_dir: "{self.directory / "js"}" }}')
        if self.routes:
            self.cluster_port = self.cluster_port or free_port()
            routes = ", ".join(f"nats-route://127.0.0.1:{port}" for port in self.routes)
            lines.append(
                f"cluster {{ name: c1, listen: 127.0.0.1:{self.cluster_port}, routes: [{routes}] }}"
            )
        lines += self.extra
        self.config = self.directory / "server.conf"
        self.config.write_text("\n".join(lines) + "\n")

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self) -> NatsServer:
        self.process = subprocess.Popen(
            [self.binary, "-c", str(self.config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for_port(self.port, 10.0, self.process)
        return self

    def stop(self, sig: int = signal.SIGTERM) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(sig)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)

    def kill(self) -> None:
        self.stop(signal.SIGKILL)

    def monitor(self, path: str) -> dict[str, object]:
        import json
        import urllib.request

        with urllib.request.urlopen(
            f"http://127.0.0.1:{self.monitor_port}{path}", timeout=2
        ) as reply:
            return dict(json.loads(reply.read()))

    def log(self) -> str:
        path = self.directory / "server.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def __enter__(self) -> NatsServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@dataclass
class NatsCluster:
    """Three JetStream nodes with routes to each other, on loopback."""

    directory: Path
    nodes: list[NatsServer] = field(default_factory=list)

    def __post_init__(self) -> None:
        ports = [free_port() for _ in range(3)]
        for index in range(3):
            self.nodes.append(
                NatsServer(
                    self.directory / f"n{index + 1}",
                    name=f"n{index + 1}",
                    cluster_port=ports[index],
                    routes=[port for i, port in enumerate(ports) if i != index],
                )
            )

    @property
    def urls(self) -> list[str]:
        return [node.url for node in self.nodes]

    def start(self) -> NatsCluster:
        for attempt in range(3):
            try:
                for node in self.nodes:
                    node.start()
                break
            except RuntimeError:
                self.stop()  # the nodes that did start must not outlive the test
                # A port taken by someone else between choosing and binding: new ports.
                if attempt == 2 or "address already in use" not in self._logs():
                    raise
                self.nodes.clear()
                self.directory = self.directory.with_name(f"{self.directory.name}-{attempt + 1}")
                self.__post_init__()
        self.wait_for_leader()
        return self

    def _logs(self) -> str:
        return "".join(node.log() for node in self.nodes)

    def wait_for_leader(self, timeout: float = 30.0) -> str:
        """The JetStream meta leader, once every running node agrees on one."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            leaders = set()
            for node in self.nodes:
                if node.process is None:
                    continue
                try:
                    meta = node.monitor("/jsz").get("meta_cluster") or {}
                except OSError:
                    leaders.add(None)
                    continue
                leaders.add(meta.get("leader") if isinstance(meta, dict) else None)
            if len(leaders) == 1 and None not in leaders:
                return str(leaders.pop())
            time.sleep(0.1)
        raise TimeoutError("the cluster elected no JetStream leader")

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()

    def __enter__(self) -> NatsCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
