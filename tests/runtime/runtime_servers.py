"""Servers on 127.0.0.1 for the runtime tests: HTTP, and UDP for the X-Ray daemon."""

import json
import socket
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler
from typing import Any

from tests.servers import LocalHttpServer

TRACE_ID = "1-5759e988-bd862e3fe1be46a994272793"
LAMBDA_SEGMENT_ID = "53995c3f42cd8ad8"


class Exchange:
    """What a test HTTP server saw: one entry per request, connections counted."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.connections = 0
        self.lock = threading.Lock()


Responder = Callable[[int, BaseHTTPRequestHandler], tuple[int, dict[str, str], bytes]]


class HttpServer:
    """A threaded HTTP/1.1 server on 127.0.0.1 answering with ``responder``."""

    def __init__(self) -> None:
        self.exchange = Exchange()
        self.responder: Responder = lambda n, request: (200, {}, b"ok")
        exchange = self.exchange
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self) -> None:
                super().setup()
                with exchange.lock:
                    exchange.connections += 1

            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                with exchange.lock:
                    exchange.requests.append(
                        {
                            "method": self.command,
                            "path": self.path,
                            "headers": dict(self.headers),
                            "body": body,
                        }
                    )
                    attempt = len(exchange.requests)
                status, headers, payload = server.responder(attempt, self)
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = _answer

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.httpd = LocalHttpServer(Handler)
        self.url = self.httpd.url

    def start(self) -> None:
        self.httpd.start()

    def stop(self) -> None:
        """Stop it and every handler thread; raise a handler's error, if any."""
        self.httpd.stop()

    @property
    def attempts(self) -> int:
        return len(self.exchange.requests)


class Daemon:
    """A UDP socket on 127.0.0.1 standing in for the X-Ray daemon."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.address = f"127.0.0.1:{self.sock.getsockname()[1]}"

    def datagrams(self, wait: float = 0.3) -> list[bytes]:
        """Every datagram received until none arrives for ``wait`` seconds."""
        received = []
        self.sock.settimeout(wait)
        while True:
            try:
                received.append(self.sock.recv(65536))
            except TimeoutError:
                return received

    def documents(self, wait: float = 0.3) -> list[dict[str, Any]]:
        """The documents received, after checking each datagram's header bytes."""
        documents = []
        for datagram in self.datagrams(wait):
            header, newline, body = datagram.partition(b"\n")
            assert header == b'{"format": "json", "version": 1}' and newline
            documents.append(json.loads(body))
        return documents

    def completed(self, wait: float = 0.3) -> list[dict[str, Any]]:
        """The subsegment documents, in the order they ended, each one complete."""
        documents = self.documents(wait)
        for document in documents:
            assert "end_time" in document and "in_progress" not in document
        return documents
