"""The dependency cache misses whenever what pip would install may differ."""

import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.builds.build_support import Fleece, IndexServer, MakeService

LOCAL_PACKAGE = """\
[build-system]
requires = ["setuptools"]
build-backend = "setuptools.build_meta"

[project]
name = "localpkg"
version = "0.1"
"""


def origin(out: str) -> str:
    """How the build got its dependencies, from its summary line."""
    return out.split("(", 1)[1].split(")", 1)[0].split(", ")[-1]


def test_another_package_index_misses_the_cache_and_its_url_is_never_shown(
    serve_index: Callable[[Path], IndexServer],
    wheelhouse: Path,
    make_service: MakeService,
    fleece: Fleece,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    service = make_service("idna\n")
    first = serve_index(wheelhouse)
    assert origin(fleece("build", str(service))[1]) == "dependencies installed"
    assert origin(fleece("build", str(service))[1]) == "dependencies from cache"
    second = serve_index(wheelhouse)  # the same wheels, another PIP_INDEX_URL
    url = second.url.replace("http://", "http://fleece:s3cret-token@")
    monkeypatch.setenv("PIP_INDEX_URL", url)
    first.stop()

    code, out, err = fleece("build", str(service))

    assert code == 0
    assert origin(out) == "dependencies installed"
    assert "s3cret-token" not in out + err
    cached = [p.name for p in (tmp_path / "fleece-cache").rglob("*")]
    assert not [name for name in cached if "s3cret" in name]


def test_a_changed_file_of_a_local_package_misses_the_cache(
    index: IndexServer, make_service: MakeService, fleece: Fleece
) -> None:
    service = make_service("../libs/localpkg\n")  # relative to src/
    package = service / "libs" / "localpkg"
    (package / "localpkg").mkdir(parents=True)
    (package / "pyproject.toml").write_text(LOCAL_PACKAGE)
    (package / "localpkg" / "__init__.py").write_text("VERSION = 1\n")
    assert origin(fleece("build", str(service))[1]) == "dependencies installed"
    # pip's in-tree build left build/ and *.egg-info in the package: no change.
    assert origin(fleece("build", str(service))[1]) == "dependencies from cache"
    (package / "localpkg" / "__init__.py").write_text("VERSION = 2\n")

    code, out, _ = fleece("build", str(service))

    assert code == 0
    assert origin(out) == "dependencies installed"
    with zipfile.ZipFile(service / "dist" / "lambda_function.zip") as built:
        assert built.read("localpkg/__init__.py") == b"VERSION = 2\n"


def test_another_fleece_version_misses_the_cache(
    index: IndexServer,
    make_service: MakeService,
    fleece: Fleece,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    service = make_service("idna\n")
    assert origin(fleece("build", str(service))[1]) == "dependencies installed"
    monkeypatch.setattr("fleece.build.artifact.__version__", "99.0.0")

    assert origin(fleece("build", str(service))[1]) == "dependencies installed"
