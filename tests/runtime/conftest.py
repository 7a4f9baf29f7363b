"""Fixtures of the runtime tests: a clean runtime, servers on 127.0.0.1.

The tests import the runtime as ``runtime_stub.fleece_runtime`` (the name
mypy knows it by); a service imports it as the top-level ``fleece_runtime``,
and with ``runtime_stub/`` on ``sys.path`` that name is the same module
object here. After each test the module's process-wide settings (default
timeouts, retries, the shared session, X-Ray patches, root handlers and the
formatter that renders Logger lines, kept clients, cached parameters, the
cold start of metrics) are restored.
"""

import io
import logging
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from runtime_stub import fleece_runtime
from tests.runtime.runtime_servers import (
    LAMBDA_SEGMENT_ID,
    TRACE_ID,
    Daemon,
)

RUNTIME_DIR = Path(__file__).resolve().parents[2] / "runtime_stub"
if str(RUNTIME_DIR) not in sys.path:
    sys.path.insert(0, str(RUNTIME_DIR))
sys.modules.setdefault("fleece_runtime", fleece_runtime)


@pytest.fixture(autouse=True)
def clean_runtime(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Restore ``fleece_runtime``'s process-wide state after each test."""
    import botocore.client
    import requests

    monkeypatch.setattr(fleece_runtime, "_boto3_defaults", (None, None))
    monkeypatch.setattr(fleece_runtime, "_requests_default_timeout", None)
    monkeypatch.setattr(fleece_runtime, "_requests_default_retries", None)
    monkeypatch.setattr(fleece_runtime, "_shared_session", None)
    monkeypatch.setattr(fleece_runtime, "_cold_start", True)
    monkeypatch.setattr(fleece_runtime, "_line_formatter", None)
    fleece_runtime._lambda_client.cache_clear()  # kept Lambda clients, and their endpoint
    fleece_runtime._parameter_client.cache_clear()  # SSM and Secrets Manager clients
    fleece_runtime.clear_parameter_cache()
    monkeypatch.setattr(fleece_runtime, "_metrics_cold_start", True)
    monkeypatch.setattr(
        botocore.client.BaseClient,
        "_make_api_call",
        botocore.client.BaseClient._make_api_call,
    )
    monkeypatch.setattr(requests.Session, "request", requests.Session.request)
    # The variables a Lambda environment sets: each test sets its own.
    for name in ("AWS_LAMBDA_LOG_LEVEL", "LOG_LEVEL", "SERVICE_NAME"):
        monkeypatch.delenv(name, raising=False)
    # A proxy of the machine's must not come between the tests and 127.0.0.1.
    for name in ("http_proxy", "https_proxy", "all_proxy", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)
    fleece_runtime._default_line_formatter.cache_clear()
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    if fleece_runtime._shared_session is not None:
        fleece_runtime._shared_session.close()
    root.handlers[:] = handlers
    root.setLevel(level)
    fleece_runtime._default_line_formatter.cache_clear()


@pytest.fixture
def stream() -> io.StringIO:
    """The stream that `setup_root_logger` sends every log line to."""
    out = io.StringIO()
    fleece_runtime.setup_root_logger(stream=out)
    return out


@pytest.fixture
def daemon(monkeypatch: pytest.MonkeyPatch) -> Iterator[Daemon]:
    """A listening daemon and a sampled trace in the environment, as on Lambda."""
    listener = Daemon()
    monkeypatch.setenv("AWS_XRAY_DAEMON_ADDRESS", listener.address)
    monkeypatch.setenv(
        "_X_AMZN_TRACE_ID", f"Root={TRACE_ID};Parent={LAMBDA_SEGMENT_ID};Sampled=1"
    )
    try:
        yield listener
    finally:
        listener.sock.close()
