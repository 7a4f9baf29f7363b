"""Fixtures shared by the whole suite.

AWS is moto's server, started once per session on 127.0.0.1 and reached over
HTTP through ``AWS_ENDPOINT_URL``, exactly as boto3 reaches AWS; its state is
reset before every test that asks for it.
"""

from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from moto.server import ThreadedMotoServer

from tests.runtime.runtime_servers import HttpServer
from tests.venvs import build_fleece_wheel, create_environment, pip_install
from tests.wheelhouse import SAM_LOCK, is_complete, sam_folder, sam_wanted

AWS_REGION = "us-east-1"


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """The URL of a moto server that lives as long as the test session."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture
def aws(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """A clean moto account, wired into this process and its children by env vars."""
    requests.post(f"{moto_endpoint}/moto-api/reset", timeout=10).raise_for_status()
    for name in (
        "AWS_PROFILE",
        "AWS_DEFAULT_PROFILE",
        "AWS_SESSION_TOKEN",
        "AWS_SECURITY_TOKEN",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", AWS_REGION)
    monkeypatch.setenv("AWS_REGION", AWS_REGION)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent/fleece-test-aws-config")
    monkeypatch.setenv(
        "AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/fleece-test-aws-credentials"
    )
    return moto_endpoint


@pytest.fixture(scope="session")
def fleece_wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """fleece's wheel, built once per test session from this checkout."""
    return build_fleece_wheel(tmp_path_factory.mktemp("fleece-wheel"))


@pytest.fixture(scope="session")
def sam(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The ``sam`` command of an environment of its own, installed offline."""
    if not is_complete(sam_folder(), sam_wanted()):
        pytest.fail(
            f"the SAM tests install from the wheels in {sam_folder()}: run "
            "`python tests/wheelhouse.py` first (it needs PyPI)"
        )
    python = create_environment(tmp_path_factory.mktemp("sam") / "venv")
    installed = pip_install(
        python, "--no-deps", "-r", str(SAM_LOCK), find_links=(sam_folder(),)
    )
    assert installed.returncode == 0, installed.stdout + installed.stderr
    return python.parent / "sam"


@pytest.fixture
def http_server() -> Iterator[HttpServer]:
    """An HTTP server on 127.0.0.1, stopped after the test."""
    server = HttpServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()
