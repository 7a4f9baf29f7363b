"""A service folder with two stages, their KMS keys in moto, and the CLI in-process."""

import io
import json
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest

from fleece.cli import main
from tests.servers import LocalHttpServer, pause

ENVIRONMENTS = """\
environments:
  - name: prod
    account: '123456789012'
    region: us-east-1
  - name: dev
    account: '123456789012'
    region: us-east-1
"""

OPEN_CONFIG = """\
stages:
  prod:
    environment: prod
    key: prod-config
  /.*/:
    environment: dev
    key: alias/dev-config
config:
  foo: bar
  port: 8080
  ratio: 0.5
  debug: false
  password:
    +prod: :encrypt:prod-password
    +/.*/: :encrypt:dev-password
  nested:
    inner_var: value
    a_list:
    - username1:
        +prod: bob-prod
        +/.*/: bob-dev
      password1:
        +prod: :encrypt:bob-prod-pw
        +/.*/: :encrypt:bob-dev-pw
    - 42
"""


@dataclass(frozen=True)
class Result:
    """What a `fleece` run printed and returned."""

    exit_code: int
    stdout: str
    stderr: str


@dataclass(frozen=True)
class Keys:
    """The KMS keys of the test stages."""

    prod: dict[str, Any]
    dev: dict[str, Any]


class _Pipe(io.BytesIO):
    """The bytes of a standard stream, named like the real one."""

    def __init__(self, name: str, data: bytes = b"") -> None:
        super().__init__(data)
        self.name = name


def run(*args: str, stdin: str | None = None) -> Result:
    """Run `fleece ARGS` in this process, as the console script does.

    Standard streams are real text streams over bytes, as in a pipe: reading
    past the end of stdin is end-of-file (click's own test runner would answer
    an empty line instead, in some click versions).
    """
    streams = [
        io.TextIOWrapper(_Pipe("<stdin>", (stdin or "").encode()), encoding="utf-8"),
        io.TextIOWrapper(_Pipe("<stdout>"), encoding="utf-8"),
        io.TextIOWrapper(_Pipe("<stderr>"), encoding="utf-8"),
    ]
    saved = sys.stdin, sys.stdout, sys.stderr
    sys.stdin, sys.stdout, sys.stderr = streams
    try:
        main(list(args))
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else 1
    else:  # pragma: no cover - main always exits
        code = 0
    finally:
        sys.stdin, sys.stdout, sys.stderr = saved
    outputs = []
    for stream in streams[1:]:
        stream.flush()
        buffer = stream.buffer
        assert isinstance(buffer, io.BytesIO)
        outputs.append(buffer.getvalue().decode())
    return Result(code, outputs[0], outputs[1])


@pytest.fixture
def keys(aws: str) -> Keys:
    """Two KMS keys with the aliases prod-config and dev-config."""
    kms = boto3.client("kms")
    made = {}
    for name in ("prod", "dev"):
        metadata = kms.create_key(Description=f"{name} config")["KeyMetadata"]
        kms.create_alias(
            AliasName=f"alias/{name}-config", TargetKeyId=metadata["KeyId"]
        )
        made[name] = metadata
    return Keys(**made)


@pytest.fixture
def service(tmp_path: Path, keys: Keys) -> Iterator[Path]:
    """An empty service folder with environments.yml, as the working directory."""
    root = tmp_path / "service"
    root.mkdir()
    (root / "environments.yml").write_text(ENVIRONMENTS)
    before = Path.cwd()
    os.chdir(root)
    try:
        yield root
    finally:
        os.chdir(before)


@pytest.fixture
def imported(service: Path) -> Path:
    """The service with OPEN_CONFIG imported into config.yml."""
    result = run("config", "import", stdin=OPEN_CONFIG)
    assert result.exit_code == 0, result.stderr
    return service


class CountingProxy:
    """An HTTP proxy on 127.0.0.1 in front of moto that records each AWS call.

    ``calls`` lists the ``X-Amz-Target`` of every request (``TrentService.Decrypt``
    for KMS Decrypt); ``most_in_flight`` is the largest number of requests it
    held at once. Each request is held ``delay`` seconds, like a network.

    Once ``failing`` names an AWS error code (set it, or POST the code to
    ``/fleece-test/fail`` from another process), every call (or only those
    with the ``X-Amz-Target`` in ``failing_target``) is answered with that
    error instead: credentials that expire in the middle of a command.
    """

    def __init__(self, upstream: str, delay: float = 0.0) -> None:
        from http.server import BaseHTTPRequestHandler

        import requests

        proxy = self
        self.calls: list[str] = []
        self.most_in_flight = 0
        self.failing: str | None = None
        self.failing_target: str | None = None
        self._in_flight = 0
        self._lock = threading.Lock()

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if self.path == "/fleece-test/fail":
                    proxy.failing = body.decode()
                    self._answer(200, b"{}")
                    return
                target = self.headers.get("X-Amz-Target")
                if proxy.failing is not None and proxy.failing_target in (None, target):
                    error = {"__type": proxy.failing, "message": "refused by the test"}
                    self._answer(400, json.dumps(error).encode())
                    return
                with proxy._lock:
                    proxy.calls.append(self.headers.get("X-Amz-Target", self.path))
                    proxy._in_flight += 1
                    proxy.most_in_flight = max(proxy.most_in_flight, proxy._in_flight)
                try:
                    pause(self, delay)
                    answer = requests.post(
                        upstream + self.path,
                        data=body,
                        headers={k: v for k, v in self.headers.items() if k != "Host"},
                        timeout=30,
                    )
                finally:
                    with proxy._lock:
                        proxy._in_flight -= 1
                self.send_response(answer.status_code)
                for name in ("Content-Type", "x-amzn-RequestId"):
                    if name in answer.headers:
                        self.send_header(name, answer.headers[name])
                self.send_header("Content-Length", str(len(answer.content)))
                self.end_headers()
                self.wfile.write(answer.content)

            def _answer(self, status: int, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/x-amz-json-1.1")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = LocalHttpServer(Handler)
        self.url = self._server.url

    def __enter__(self) -> "CountingProxy":
        self._server.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.stop()

    def count(self, target: str) -> int:
        """How many requests had this ``X-Amz-Target``."""
        return self.calls.count(target)


class SilentServer:
    """A TCP server on 127.0.0.1 that accepts every connection and never
    answers: a KMS endpoint that hangs."""

    def __init__(self) -> None:
        self._socket = socket.create_server(("127.0.0.1", 0))
        self._socket.settimeout(0.1)
        self._held: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self.url = f"http://127.0.0.1:{self._socket.getsockname()[1]}"

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                connection, _ = self._socket.accept()
            except TimeoutError:
                continue
            self._held.append(connection)

    def __enter__(self) -> "SilentServer":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        for connection in self._held:
            connection.close()
        self._socket.close()

    @property
    def connections(self) -> int:
        """How many connections it accepted."""
        return len(self._held)


@pytest.fixture
def kms_proxy(aws: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[CountingProxy]:
    """AWS reached through a CountingProxy (which can start failing)."""
    with CountingProxy(aws) as proxy:
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.url)
        yield proxy


def sha256_of(path: Path) -> str:
    """The sha256 of a file's bytes."""
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


LOAD = "import fleece_config; fleece_config.load_config()"
LOAD_JSON = "import json, fleece_config; print(json.dumps(fleece_config.load_config()))"


def python_in(folder: Path, code: str, endpoint: str | None = None) -> Any:
    """Run ``code`` in a fresh interpreter in ``folder``; its stdout as JSON."""
    result = failing_python_in(folder, code, endpoint, expect_success=True)
    return json.loads(result.stdout)


def failing_python_in(
    folder: Path, code: str, endpoint: str | None = None, expect_success: bool = False
) -> "subprocess.CompletedProcess[str]":
    """Run ``code`` in a fresh interpreter in ``folder``, which must fail
    (or succeed, with ``expect_success``)."""
    env = dict(os.environ)
    if endpoint:
        env["AWS_ENDPOINT_URL"] = endpoint
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (result.returncode == 0) == expect_success, result.stderr
    return result
