"""Helpers of the build tests: a PEP 503 package index served on 127.0.0.1,
reading zips, local packages, and interpreters out of sight."""

import hashlib
import html
import os
import re
import zipfile
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest

from tests.servers import LocalHttpServer

Fleece = Callable[..., tuple[int, str, str]]
MakeService = Callable[..., Path]


def project_of(filename: str) -> str:
    """The normalised project name of a wheel or sdist file name (PEP 503)."""
    stem = re.split(r"-\d", filename, maxsplit=1)[0]
    return re.sub(r"[-_.]+", "-", stem).lower()


class _SimpleIndex(BaseHTTPRequestHandler):
    folder: Path

    def do_GET(self) -> None:
        path = self.path.split("?")[0]
        files = sorted(p.name for p in self.folder.iterdir() if p.is_file())
        if path.startswith("/files/") and path[7:] in files:
            self._send(
                (self.folder / path[7:]).read_bytes(), "application/octet-stream"
            )
        elif match := re.fullmatch(r"/simple/([^/]+)/?", path):
            wanted = [f for f in files if project_of(f) == match.group(1).lower()]
            if not wanted:
                self.send_error(404)
                return
            links = "".join(
                f'<a href="/files/{html.escape(f)}">{html.escape(f)}</a><br>'
                for f in wanted
            )
            self._send(f"<html><body>{links}</body></html>".encode(), "text/html")
        else:
            self.send_error(404)

    def _send(self, body: bytes, content_type: str) -> None:
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


class IndexServer:
    """A simple index of one folder's files, on a free port of 127.0.0.1."""

    def __init__(self, folder: Path) -> None:
        handler = type("Handler", (_SimpleIndex,), {"folder": folder})
        self._server = LocalHttpServer(handler).start()
        self.url = f"{self._server.url}/simple/"

    def stop(self) -> None:
        self._server.stop()


def zip_of(service: Path) -> Path:
    """Where `fleece build` writes the service's zip."""
    return service / "dist" / "lambda_function.zip"


def names(archive: Path) -> list[str]:
    """The entries of a zip, in their order."""
    with zipfile.ZipFile(archive) as opened:
        return opened.namelist()


def contents(archive: Path) -> dict[str, bytes]:
    """Every entry of a zip and its bytes."""
    with zipfile.ZipFile(archive) as opened:
        return {name: opened.read(name) for name in opened.namelist()}


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write_local_package(folder: Path, name: str = "localpkg", value: int = 1) -> Path:
    """A setuptools project in ``folder`` with one package, ``name``."""
    (folder / name).mkdir(parents=True)
    (folder / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["setuptools"]\n'
        'build-backend = "setuptools.build_meta"\n\n'
        f'[project]\nname = "{name}"\nversion = "0.1"\n'
    )
    (folder / name / "__init__.py").write_text(f"VALUE = {value}\n")
    return folder


def hide_pythons(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, python: str) -> None:
    """Leave no interpreter of ``python`` ("3.12") where a build looks for one."""
    empty = tmp_path / "no-pythons"
    empty.mkdir(exist_ok=True)
    monkeypatch.setenv("PYENV_ROOT", str(empty))
    monkeypatch.setenv("UV_PYTHON_INSTALL_DIR", str(empty))
    folders = os.environ.get("PATH", "").split(os.pathsep)
    kept = [f for f in folders if not (Path(f) / f"python{python}").exists()]
    monkeypatch.setenv("PATH", os.pathsep.join(kept))
