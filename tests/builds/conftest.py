"""Fixtures of the build tests: a package index on 127.0.0.1 and demo services.

The tests never reach PyPI. ``tests/wheelhouse.py`` downloads the wheels they
need beforehand (CI runs it); here that folder is served as a PEP 503 "simple"
index by a real HTTP server, and pip finds it through ``PIP_INDEX_URL``, the way
a user points fleece at a private index.
"""

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from fleece.build.bytecode import Interpreter, find_interpreter
from fleece.cli import main
from fleece.service.new import NewService, create_service
from tests.builds.build_support import Fleece, IndexServer, MakeService
from tests.servers import stop_all
from tests.wheelhouse import is_complete, targets_folder, targets_wanted


@pytest.fixture(scope="session")
def wheelhouse() -> Path:
    folder = targets_folder()
    if not is_complete(folder, targets_wanted()):
        pytest.fail(
            f"the build tests need the wheels in {folder}: "
            "run `python tests/wheelhouse.py` first (it needs PyPI)"
        )
    return folder


@pytest.fixture(scope="session")
def python312(tmp_path_factory: pytest.TempPathFactory) -> Interpreter:
    """This machine's Python 3.12, which builds for python3.12 compile with."""
    memo = tmp_path_factory.mktemp("interpreters") / "memo.json"
    found = find_interpreter("3.12", memo)
    if found is None:
        pytest.fail(
            "the bytecode tests need a Python 3.12 interpreter on PATH, "
            "in pyenv or among uv's Pythons (uv python install 3.12)"
        )
    return found


@pytest.fixture
def serve_index(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[Callable[[Path], IndexServer]]:
    """``serve_index(folder)``: serve a folder as the only index pip sees."""
    servers: list[IndexServer] = []

    def serve(folder: Path) -> IndexServer:
        server = IndexServer(folder)
        servers.append(server)
        monkeypatch.setenv("PIP_INDEX_URL", server.url)
        return server

    # Only the index under test: no user or machine pip configuration.
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    for name in ("PIP_FIND_LINKS", "PIP_EXTRA_INDEX_URL", "PIP_NO_INDEX"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PIP_CACHE_DIR", str(tmp_path / "pip-cache"))
    monkeypatch.setenv("FLEECE_CACHE_DIR", str(tmp_path / "fleece-cache"))
    try:
        yield serve
    finally:
        stop_all(servers)


@pytest.fixture
def index(serve_index: Callable[[Path], IndexServer], wheelhouse: Path) -> IndexServer:
    """The wheelhouse, served as the package index of this test."""
    return serve_index(wheelhouse)


@pytest.fixture
def make_service(tmp_path: Path) -> MakeService:
    """``make_service(requirements, architecture=..., api_style=..., git=...)``:
    a service from `fleece new`, ``requirements`` added to its own."""
    count = 0

    def make(
        requirements: str = "requests\n",
        architecture: str = "x86_64",
        api_style: str = "none",
        git: bool = False,
    ) -> Path:
        nonlocal count
        count += 1
        created = create_service(
            NewService(
                name="demo",
                destination=tmp_path / f"demo{count}",
                data=(f"architecture={architecture}", f"api_style={api_style}"),
                defaults=True,
                git=git,
            )
        )
        requirements_file = created.path / "src" / "requirements.txt"
        with requirements_file.open("a", encoding="utf-8") as handle:
            handle.write(requirements)
        return created.path

    return make


@pytest.fixture
def fleece(capsys: pytest.CaptureFixture[str]) -> Fleece:
    """``fleece(*args)``: the CLI in this process; (exit code, stdout, stderr)."""

    def invoke(*args: str) -> tuple[int, str, str]:
        capsys.readouterr()
        with pytest.raises(SystemExit) as exited:
            main(list(args))
        captured = capsys.readouterr()
        code = exited.value.code
        return (code if isinstance(code, int) else 1), captured.out, captured.err

    return invoke
