"""The HTTP server every test that needs one starts: on 127.0.0.1, stopped whole.

`LocalHttpServer.stop` stops accepting, wakes the handlers waiting in `pause`,
hangs up every open connection and joins every handler thread, so nothing a
test started outlives it; a thread that does not end within
`STOP_TIMEOUT` seconds fails the test rather than hanging it.

A handler's exception is kept in `errors` and raised by `stop`, in the test's
thread; it is never printed from the handler's thread. Besides keeping the
output clean, this matters on Python 3.11.7: a traceback printed in one thread
while pytest formats a failure in another can crash pytest itself ("AST
constructor recursion depth mismatch", CPython gh-106905: the AST conversion
state was shared between threads). A client that hung up (`ConnectionError`)
or refused the TLS handshake (`ssl.SSLError`) is what timeout and certificate
tests do, not an error.

A TLS server (`serve_tls`) shakes hands in the handler's thread, not in
``accept()``: a client that connects and never says hello cannot block the
serving thread, and so `stop`.
"""

import contextlib
import socket
import ssl
import sys
import threading
from collections.abc import Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol

STOP_TIMEOUT = 10.0


class LocalHttpServer(ThreadingHTTPServer):
    """A threaded HTTP server on a free port of 127.0.0.1."""

    block_on_close = False  # stop() joins the handler threads, with a timeout

    def __init__(self, handler: type[BaseHTTPRequestHandler]) -> None:
        super().__init__(("127.0.0.1", 0), handler)
        self.closing = threading.Event()
        self.errors: list[BaseException] = []
        self._open: set[socket.socket] = set()
        self._handlers: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._thread = threading.Thread(
            target=self.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"test server {self.server_address[1]}",
            daemon=True,
        )
        self.url = f"http://127.0.0.1:{self.server_address[1]}"

    def serve_tls(self, context: ssl.SSLContext) -> None:
        """Serve HTTPS with ``context`` (before `start`)."""
        self.socket = context.wrap_socket(
            self.socket, server_side=True, do_handshake_on_connect=False
        )
        self.url = self.url.replace("http://", "https://")

    def start(self) -> "LocalHttpServer":
        self._thread.start()
        return self

    def process_request(self, request: Any, client_address: Any) -> None:
        thread = threading.Thread(
            target=self.process_request_thread,
            args=(request, client_address),
            name=f"test server {self.server_address[1]} handler",
            daemon=True,
        )
        with self._lock:  # before its thread starts: stop() cannot miss it
            self._open.add(request)
            self._handlers = [t for t in self._handlers if t.is_alive()]
            self._handlers.append(thread)
        thread.start()

    def finish_request(self, request: Any, client_address: Any) -> None:
        if isinstance(request, ssl.SSLSocket):
            request.do_handshake()
        super().finish_request(request, client_address)

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            with self._lock:
                self._open.discard(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        error = sys.exc_info()[1]
        if error is None or isinstance(error, ConnectionError | ssl.SSLError):
            return
        if isinstance(error, OSError | ValueError) and self.closing.is_set():
            return  # the connection was hung up by stop()
        with self._lock:
            self.errors.append(error)

    def stop(self) -> None:
        """Stop serving and join every thread; raise a handler's error, if any.

        Calling it again does nothing more; an error is raised once.
        """
        self.closing.set()
        if self._thread.is_alive():
            # shutdown() waits for the serving loop without a limit: from a
            # thread of its own, a loop that never ends fails the test below.
            threading.Thread(target=self.shutdown, daemon=True).start()
            self._thread.join(STOP_TIMEOUT)
        with self._lock:
            hanging = list(self._open)
            handlers = list(self._handlers)
        for connection in hanging:
            # The plain socket's shutdown wakes a blocked read, TLS too (an
            # SSLSocket's own would drop its TLS state under the reader).
            with contextlib.suppress(OSError):  # already closed by its handler
                socket.socket.shutdown(connection, socket.SHUT_RDWR)
        for thread in handlers:
            thread.join(STOP_TIMEOUT)
        self.server_close()
        alive = [t.name for t in [self._thread, *handlers] if t.is_alive()]
        if alive:
            raise AssertionError(f"the test server's threads did not end: {alive}")
        with self._lock:
            errors, self.errors = self.errors, []
        if errors:
            raise AssertionError(
                f"the test server's handler failed: {errors[0]!r}"
            ) from errors[0]


class Stoppable(Protocol):
    def stop(self) -> None: ...


def stop_all(servers: Iterable[Stoppable]) -> None:
    """Stop every server, then raise the first one's error, if any."""
    failures: list[AssertionError] = []
    for server in servers:
        try:
            server.stop()
        except AssertionError as failure:
            failures.append(failure)
    if failures:
        raise failures[0]


def pause(request: BaseHTTPRequestHandler, seconds: float) -> None:
    """Sleep in a handler for ``seconds``, or until its server stops."""
    server = request.server
    assert isinstance(server, LocalHttpServer)
    server.closing.wait(seconds)
