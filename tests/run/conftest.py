"""Fixtures of the `fleece run` tests: a fake Rackspace on 127.0.0.1, moto's STS.

The fake speaks the identity and FAWS protocol (paths, headers, bodies) and
refuses anything else with the status codes the real services use, so a
request fleece gets wrong fails the test.
"""

from collections.abc import Iterator
from pathlib import Path

import pytest

from fleece.cli import main
from tests.run.run_support import FakeRackspace, Fleece, RackspaceHandler
from tests.servers import LocalHttpServer


@pytest.fixture
def rackspace(monkeypatch: pytest.MonkeyPatch, aws: str) -> Iterator[FakeRackspace]:
    """The fake Rackspace, wired in by the endpoint variables; AWS is moto."""
    fake = FakeRackspace()
    handler = type("Handler", (RackspaceHandler,), {"fake": fake})
    server = LocalHttpServer(handler).start()
    fake.url = server.url
    monkeypatch.setenv("FLEECE_RACKSPACE_IDENTITY_URL", fake.url)
    monkeypatch.setenv("FLEECE_FAWS_URL", fake.url)
    for name in ("RS_USERNAME", "RS_API_KEY", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    try:
        yield fake
    finally:
        server.stop()


@pytest.fixture
def fleece(capfd: pytest.CaptureFixture[str]) -> Fleece:
    """``fleece(*args)``: the CLI in this process; (exit code, stdout, stderr).

    capfd, not capsys: the child process writes to the same file descriptors.
    """

    def invoke(*args: str) -> tuple[int, str, str]:
        capfd.readouterr()
        with pytest.raises(SystemExit) as exited:
            main(list(args))
        captured = capfd.readouterr()
        code = exited.value.code
        return (code if isinstance(code, int) else 1), captured.out, captured.err

    return invoke


@pytest.fixture
def environments_file(tmp_path: Path) -> Path:
    path = tmp_path / "environments.yml"
    path.write_text("""\
environments:
  - name: dev
    account: '111111111111'
    rs_username_var: DEV_RS_USER
    rs_apikey_var: DEV_RS_KEY
  - name: staging
    account: '222222222222'
    region: eu-west-1
  - name: production
    account: '333333333333'
    role: DeployRole
stages:
  prod: production
  /feature-.*/: dev
  /.*/: staging
""")
    return path
