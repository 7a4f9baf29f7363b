"""The HTTP server every test that needs one starts: on 127.0.0.1, stopped whole.

`LocalHttpServer.stop` stops accepting, wakes the handlers waiting in `pause`,
hangs up every open connection and joins every handler thread, so nothing a
test started outlives it.

A handler's exception is kept in `errors` and raised by `stop`, in the test's
thread; it is never printed from the handler's thread. Besides keeping the
output clean, this matters on Python 3.11: a traceback printed in one thread
while pytest formats a failure in another can crash pytest itself ("AST
constructor recursion depth mismatch", CPython gh-106905: the AST conversion
state is shared between threads). A client that hung up (`ConnectionError`) is
what timeout tests do, not an error.
"""

import contextlib
import socket
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class LocalHttpServer(ThreadingHTTPServer):
    """A threaded HTTP server on a free port of 127.0.0.1."""

    daemon_threads = False  # handler threads are joined by server_close()
    block_on_close = True

    def __init__(self, handler: type[BaseHTTPRequestHandler]) -> None:
        super().__init__(("127.0.0.1", 0), handler)
        self.closing = threading.Event()
        self.errors: list[BaseException] = []
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._thread = threading.Thread(
            target=self.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"test server {self.server_address[1]}",
            daemon=True,
        )
        self.url = f"http://127.0.0.1:{self.server_address[1]}"

    def start(self) -> "LocalHttpServer":
        self._thread.start()
        return self

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._lock:  # before its thread starts: stop() cannot miss it
            self._open.add(request)
        super().process_request(request, client_address)

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            with self._lock:
                self._open.discard(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        error = sys.exc_info()[1]
        if error is None or isinstance(error, ConnectionError):
            return
        if isinstance(error, OSError) and self.closing.is_set():
            return  # the connection was hung up by stop()
        with self._lock:
            self.errors.append(error)

    def stop(self) -> None:
        """Stop serving and join every thread; raise a handler's error, if any."""
        self.closing.set()
        if self._thread.is_alive():
            self.shutdown()
            self._thread.join()
        with self._lock:
            hanging = list(self._open)
        for connection in hanging:
            with contextlib.suppress(OSError):  # already closed by its handler
                connection.shutdown(socket.SHUT_RDWR)
        self.server_close()  # joins the handler threads
        if self.errors:
            error = self.errors[0]
            raise AssertionError(
                f"the test server's handler failed: {error!r}"
            ) from error


def pause(request: BaseHTTPRequestHandler, seconds: float) -> None:
    """Sleep in a handler for ``seconds``, or until its server stops."""
    server = request.server
    assert isinstance(server, LocalHttpServer)
    server.closing.wait(seconds)
