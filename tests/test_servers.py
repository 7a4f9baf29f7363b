"""The tests' HTTP server stops whole and never prints from its threads."""

import http.client
import socket
import ssl
import struct
import threading
import time
from http.server import BaseHTTPRequestHandler

import pytest

from tests.runtime.outbound_servers import Certificate, certificate
from tests.servers import LocalHttpServer, pause

__all__ = ["certificate"]  # the fixture used here


class Answering(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        if self.path == "/fail":
            raise ValueError("the handler broke")
        if self.path == "/slow":
            pause(self, 60)
        if self.path == "/big":
            for _ in range(1000):  # 10 MB, more than the socket buffers hold
                self.wfile.write(b"x" * 10_000)
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, format: str, *args: object) -> None:
        pass


def server_threads() -> list[threading.Thread]:
    return [
        thread
        for thread in threading.enumerate()
        if thread is not threading.current_thread() and thread.name != "MainThread"
    ]


def test_stop_ends_paused_handlers_and_idle_keep_alive_connections() -> None:
    before = set(server_threads())
    server = LocalHttpServer(Answering).start()
    port = server.server_address[1]
    idle = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    idle.request("GET", "/")
    assert idle.getresponse().read() == b"ok"  # the connection stays open
    waiting = socket.create_connection(("127.0.0.1", port))
    waiting.sendall(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
    time.sleep(0.2)  # the handler is in its pause

    started = time.monotonic()
    server.stop()

    assert time.monotonic() - started < 5  # not the 60 s pause
    assert set(server_threads()) <= before
    idle.close()
    waiting.close()


def test_a_client_that_hangs_up_is_not_an_error(
    capfd: pytest.CaptureFixture[str],
) -> None:
    server = LocalHttpServer(Answering).start()
    client = socket.create_connection(("127.0.0.1", server.server_address[1]))
    client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    client.sendall(b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n")
    client.close()  # a reset: the handler's writes fail while it is serving
    for _ in range(500):
        if not server._open:  # the handler has ended
            break
        time.sleep(0.01)

    assert not server._open
    assert server.errors == []
    server.stop()
    assert capfd.readouterr().err == ""


def test_a_tls_client_that_never_says_hello_does_not_block_stop(
    certificate: Certificate,
) -> None:
    server = LocalHttpServer(Answering)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(certificate.cert_file, certificate.key_file)
    server.serve_tls(context)
    server.start()
    silent = socket.create_connection(("127.0.0.1", server.server_address[1]))
    time.sleep(0.2)  # accepted, its handshake waiting

    started = time.monotonic()
    server.stop()

    assert time.monotonic() - started < 5
    silent.close()


def test_a_handler_s_error_is_raised_by_stop_and_printed_by_nobody(
    capfd: pytest.CaptureFixture[str],
) -> None:
    server = LocalHttpServer(Answering).start()
    connection = http.client.HTTPConnection("127.0.0.1", server.server_address[1])
    connection.request("GET", "/fail")
    with pytest.raises(http.client.RemoteDisconnected):
        connection.getresponse()
    connection.close()

    with pytest.raises(AssertionError, match="the handler broke") as raised:
        server.stop()

    assert isinstance(raised.value.__cause__, ValueError)
    assert capfd.readouterr().err == ""
