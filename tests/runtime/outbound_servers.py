"""Helpers of the outbound tests: log lines, TLS, scripted sockets, a forward proxy."""

import base64
import contextlib
import datetime
import http.client
import io
import ipaddress
import json
import select
import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.runtime.runtime_servers import HttpServer
from tests.servers import STOP_TIMEOUT, LocalHttpServer, pause, stop_all


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


@dataclass
class ProxiedRequest:
    """A request line a `ForwardProxy` read, and its Proxy-Authorization."""

    line: str
    authorization: str | None


# Headers of one hop, not forwarded (RFC 9110, 7.6.1), and those the proxy's
# own answer writes.
HOP_BY_HOP = {"connection", "keep-alive", "proxy-authorization", "proxy-connection"}
WRITTEN = {"content-length", "transfer-encoding", "server", "date", *HOP_BY_HOP}


class ForwardProxy:
    """An HTTP forward proxy on 127.0.0.1, as an egress proxy of a VPC.

    A request in absolute form (``GET http://host:port/path``) is forwarded
    to its target in origin form, without the proxy's own headers, and the
    answer sent back on the kept-alive connection. ``CONNECT host:port``
    opens a tunnel: bytes are relayed both ways until either side hangs up
    (or the proxy stops). A request in origin form is for the proxy itself:
    200 ``proxy``. Every request line and its Proxy-Authorization are kept
    in `requests`; `connections` counts the client connections.

    Settings: `credentials` (``user:password``): a request without them is
    answered 407; `refuse`: every CONNECT is answered with this status;
    `hang`: a CONNECT is answered only when the proxy stops.
    """

    def __init__(self) -> None:
        self.requests: list[ProxiedRequest] = []
        self.connections = 0
        self.credentials: str | None = None
        self.refuse: int | None = None
        self.hang = False
        self.lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self) -> None:
                super().setup()
                with proxy.lock:
                    proxy.connections += 1

            def do_CONNECT(self) -> None:
                self.close_connection = True
                refusal = proxy.refusal(self) or proxy.refuse
                if proxy.hang:
                    pause(self, 60.0)
                    return
                if refusal is not None:
                    self.answer(refusal, b"")
                    return
                host, _, port = self.path.rpartition(":")
                with socket.create_connection((host, int(port)), timeout=5) as target:
                    self.send_response(200, "Connection established")
                    self.end_headers()
                    relay(self.connection, target, proxy.httpd.closing)

            def forward(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                refusal = proxy.refusal(self)
                url = urlsplit(self.path)
                if refusal is not None or not url.scheme:
                    self.answer(refusal or 200, b"" if refusal else b"proxy")
                    return
                headers = {
                    name: value
                    for name, value in self.headers.items()
                    if name.lower() not in HOP_BY_HOP
                }
                path = f"{url.path}?{url.query}" if url.query else url.path
                target = http.client.HTTPConnection(
                    url.hostname or "", url.port or 80, timeout=10
                )
                try:
                    target.request(self.command, path, body, headers)
                    answer = target.getresponse()
                    content = answer.read()
                finally:
                    target.close()
                self.send_response(answer.status, answer.reason)
                for name, value in answer.getheaders():
                    if name.lower() not in WRITTEN:
                        self.send_header(name, value)
                self.answer_body(content)

            do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = forward

            def answer(self, status: int, content: bytes) -> None:
                self.send_response(status)
                if status == 407:
                    self.send_header("Proxy-Authenticate", 'Basic realm="egress"')
                self.answer_body(content)

            def answer_body(self, content: bytes) -> None:
                self.send_header("Content-Length", str(len(content)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(content)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.httpd = LocalHttpServer(Handler)
        self.url = self.httpd.url
        self.port = self.httpd.server_address[1]

    def refusal(self, request: BaseHTTPRequestHandler) -> int | None:
        """Keep the request; 407 when it lacks the credentials the proxy wants."""
        authorization = request.headers.get("Proxy-Authorization")
        with self.lock:
            self.requests.append(ProxiedRequest(request.requestline, authorization))
        if self.credentials is None:
            return None
        wanted = base64.b64encode(self.credentials.encode()).decode()
        return None if authorization == f"Basic {wanted}" else 407

    @property
    def lines(self) -> list[str]:
        """The request lines received, in order."""
        return [request.line for request in self.requests]


def relay(
    client: socket.socket, target: socket.socket, closing: threading.Event
) -> None:
    """Copy bytes both ways until either side hangs up or ``closing`` is set."""
    while not closing.is_set():
        readable, _, _ = select.select([client, target], [], [], 0.05)
        for sock in readable:
            data = sock.recv(65536)
            if not data:
                return
            (target if sock is client else client).sendall(data)


@pytest.fixture
def forward_proxy() -> Iterator[ForwardProxy]:
    """A `ForwardProxy` on 127.0.0.1, stopped after the test."""
    proxy = ForwardProxy()
    proxy.httpd.start()
    try:
        yield proxy
    finally:
        proxy.httpd.stop()
