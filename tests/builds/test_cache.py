"""The build cache: installed dependencies miss whenever what pip would install
may differ; their compressed layer makes a warm build compress only the
service's own files."""

import os
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.builds.build_support import (
    Fleece,
    IndexServer,
    MakeService,
    sha256,
    write_local_package,
    zip_of,
)


def origin(out: str) -> str:
    """How the build got its dependencies, from its summary line."""
    return out.split("(", 1)[1].split(")", 1)[0].split(", ")[2]


def layers(cache: Path) -> list[Path]:
    return sorted((cache / "layers").glob("*.zip"))


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
    package = write_local_package(service / "libs" / "localpkg")
    assert origin(fleece("build", str(service))[1]) == "dependencies installed"
    assert origin(fleece("build", str(service))[1]) == "dependencies from cache"
    (package / "localpkg" / "__init__.py").write_text("VALUE = 2\n")

    code, out, _ = fleece("build", str(service))

    assert code == 0
    assert origin(out) == "dependencies installed"
    with zipfile.ZipFile(zip_of(service)) as built:
        assert built.read("localpkg/__init__.py") == b"VALUE = 2\n"


def test_another_fleece_version_misses_the_cache(
    index: IndexServer,
    make_service: MakeService,
    fleece: Fleece,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    service = make_service("idna\n")
    assert origin(fleece("build", str(service))[1]) == "dependencies installed"
    monkeypatch.setattr("fleece.build.cache.__version__", "99.0.0")

    assert origin(fleece("build", str(service))[1]) == "dependencies installed"


def test_a_warm_build_copies_the_compressed_dependencies_as_they_are(
    index: IndexServer, make_service: MakeService, fleece: Fleece, tmp_path: Path
) -> None:
    service = make_service("requests\n")
    assert fleece("build", str(service))[0] == 0
    [layer] = layers(tmp_path / "fleece-cache")
    before = os.stat(layer)
    with (service / "src" / "demo" / "handler.py").open("a") as handler:
        handler.write("# a one-line change\n")

    code, out, _ = fleece("build", str(service))

    assert code == 0
    assert origin(out) == "dependencies from cache"
    assert layers(tmp_path / "fleece-cache") == [layer]
    after = os.stat(layer)
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    # The zip starts with the layer's entries, byte for byte.
    with zipfile.ZipFile(layer) as opened:
        entries_end = opened.start_dir
    assert (
        zip_of(service).read_bytes()[:entries_end] == layer.read_bytes()[:entries_end]
    )


def test_a_warm_build_gives_the_zip_a_cold_one_gives(
    index: IndexServer,
    make_service: MakeService,
    fleece: Fleece,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    service = make_service("requests\n")
    handler = service / "src" / "demo" / "handler.py"
    original = handler.read_text()
    assert fleece("build", str(service))[0] == 0
    handler.write_text(original + "# edited\n")
    assert fleece("build", str(service))[0] == 0
    handler.write_text(original)
    assert fleece("build", str(service))[0] == 0  # warm: layer and bytecode kept
    warm = sha256(zip_of(service))
    monkeypatch.setenv("FLEECE_CACHE_DIR", str(tmp_path / "another-cache"))

    assert fleece("build", str(service))[0] == 0  # cold

    assert sha256(zip_of(service)) == warm


def test_excludes_and_the_service_s_own_files_make_another_layer(
    index: IndexServer, make_service: MakeService, fleece: Fleece, tmp_path: Path
) -> None:
    service = make_service("requests\n")
    assert fleece("build", str(service))[0] == 0
    assert fleece("build", str(service), "--exclude", "*.pem")[0] == 0
    # The service's own idna/core.py replaces the dependency's.
    (service / "src" / "idna").mkdir()
    (service / "src" / "idna" / "core.py").write_text("OWN = True\n")

    code, _, _ = fleece("build", str(service))

    assert code == 0
    assert len(layers(tmp_path / "fleece-cache")) == 3
    with zipfile.ZipFile(zip_of(service)) as built:
        assert built.namelist().count("idna/core.py") == 1
        assert built.read("idna/core.py") == b"OWN = True\n"


def test_a_rebuild_replaces_the_layers_of_the_dependencies_it_reinstalls(
    index: IndexServer, make_service: MakeService, fleece: Fleece, tmp_path: Path
) -> None:
    service = make_service("idna\n")
    assert fleece("build", str(service))[0] == 0
    assert fleece("build", str(service), "--exclude", "*.txt")[0] == 0
    old = layers(tmp_path / "fleece-cache")

    assert fleece("build", str(service), "--rebuild")[0] == 0

    [new] = layers(tmp_path / "fleece-cache")
    assert new not in old
