"""Helpers of the outbound tests: log lines, TLS, scripted sockets."""

import contextlib
import datetime
import io
import ipaddress
import json
import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.runtime.runtime_servers import HttpServer
from tests.servers import STOP_TIMEOUT, stop_all


def lines(stream: io.StringIO) -> list[dict[str, Any]]:
    """The JSON log lines written so far."""
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def events(stream: io.StringIO, event: str) -> list[dict[str, Any]]:
    """The log lines of one event."""
    return [line for line in lines(stream) if line["event"] == event]


def closed_port() -> int:
    """A port on 127.0.0.1 where nothing listens."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@dataclass
class Certificate:
    """A self-signed certificate for 127.0.0.1 and the files holding it."""

    cert_file: Path
    key_file: Path


@pytest.fixture(scope="session")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> Certificate:
    """A self-signed certificate for IP 127.0.0.1, valid for a day."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    folder = tmp_path_factory.mktemp("tls")
    cert_file, key_file = folder / "cert.pem", folder / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return Certificate(cert_file, key_file)


@pytest.fixture
def tls_server(certificate: Certificate) -> Iterator[HttpServer]:
    """An HTTPS server on 127.0.0.1 with the self-signed certificate."""
    server = HttpServer()
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(certificate.cert_file, certificate.key_file)
    server.httpd.serve_tls(context)
    server.url = server.httpd.url
    server.start()
    try:
        yield server
    finally:
        server.stop()


# What a scripted connection does with each request it reads: answer it, or
# close the connection without a word.
ANSWER = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
HANG_UP = b""


class ScriptedServer:
    """A TCP server on 127.0.0.1 whose connections follow scripts, one per connection.

    Each script is a list of replies, one per request read on that
    connection: the bytes to send, or `HANG_UP` to close the connection
    without answering (a server that dropped an idle keep-alive connection
    just as the request arrived).
    """

    def __init__(self, scripts: list[list[bytes]]) -> None:
        self.scripts = scripts
        self.requests: list[bytes] = []
        self.connections = 0
        self.errors: list[OSError] = []
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen()
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self._closing = threading.Event()
        self._current: socket.socket | None = None
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        try:
            for script in self.scripts:
                connection, _ = self.sock.accept()
                self._current = connection
                self.connections += 1
                with connection:
                    for reply in script:
                        request = _read_request(connection)
                        self.requests.append(request)
                        if reply is HANG_UP:
                            break
                        connection.sendall(reply)
        except OSError as error:  # kept for stop(), never printed from here
            if not (self._closing.is_set() or isinstance(error, ConnectionError)):
                self.errors.append(error)

    def stop(self) -> None:
        """Stop serving, the thread too; raise the error it met, if any."""
        self._closing.set()
        for sock in (self.sock, self._current):
            if sock is not None:  # shutdown wakes a blocked accept() or recv()
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
        self.thread.join(STOP_TIMEOUT)
        self.sock.close()
        assert not self.thread.is_alive(), "the scripted server's thread did not end"
        if self.errors:
            raise AssertionError(
                f"the scripted server failed: {self.errors[0]!r}"
            ) from self.errors[0]


def _read_request(connection: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = connection.recv(65536)
        if not chunk:
            return data
        data += chunk
    return data


@pytest.fixture
def scripted() -> Iterator[Callable[[list[list[bytes]]], ScriptedServer]]:
    """Start `ScriptedServer` instances; each is closed after the test."""
    servers: list[ScriptedServer] = []

    def start(scripts: list[list[bytes]]) -> ScriptedServer:
        server = ScriptedServer(scripts)
        servers.append(server)
        return server

    yield start
    stop_all(servers)
