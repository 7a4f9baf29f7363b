"""What the source folder gives the zip: the handler always, build leftovers
never, symbolic links followed, skipped or refused."""

import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from fleece.build.template import Handler, template_handlers
from tests.builds.build_support import (
    Fleece,
    IndexServer,
    MakeService,
    names,
    sha256,
    write_local_package,
    zip_of,
)

ServeIndex = Callable[[Path], IndexServer]


@pytest.fixture
def service(serve_index: ServeIndex, make_service: MakeService) -> Path:
    """A service without dependencies (no index needed), from `fleece new`."""
    return make_service("")


# -- the handler of template.yaml ------------------------------------------------


@pytest.mark.parametrize("exclude", ["*", "demo", "handler.py", "demo/*"])
def test_a_zip_without_the_handler_module_is_refused_in_one_line(
    service: Path, fleece: Fleece, exclude: str
) -> None:
    assert fleece("build", str(service))[0] == 0
    before = sha256(zip_of(service))

    code, out, err = fleece("build", str(service), "--exclude", exclude)

    assert (code, out) == (2, "")
    assert err == (
        "Error: the build holds no demo/handler.py (nor demo/handler/__init__.py), "
        "the module of Function's Handler demo.handler.handler in template.yaml: "
        "check --exclude and --source, or the Handler\n"
    )
    assert sha256(zip_of(service)) == before


def test_a_handler_in_a_package_of_its_own_name_is_found(
    service: Path, fleece: Fleece
) -> None:
    package = service / "src" / "demo" / "handler"
    package.mkdir()
    (service / "src" / "demo" / "handler.py").rename(package / "__init__.py")

    code, _, err = fleece("build", str(service))

    assert (code, err) == (0, "")
    assert "demo/handler/__init__.py" in names(zip_of(service))


def test_the_output_folder_is_checked_against_the_handler_too(
    service: Path, fleece: Fleece, tmp_path: Path
) -> None:
    output = tmp_path / "artifacts"

    code, _, err = fleece(
        "build", str(service), "--output-dir", str(output), "--exclude", "demo"
    )

    assert code == 2
    assert "the build holds no demo/handler.py" in err
    assert not output.exists()


def write_template(service: Path, text: str) -> None:
    (service / "template.yaml").write_text(
        'AWSTemplateFormatVersion: "2010-09-09"\n'
        "Transform: AWS::Serverless-2016-10-31\n" + text
    )


def test_handlers_come_from_functions_built_from_the_source_or_the_zip(
    tmp_path: Path,
) -> None:
    source, archive = tmp_path / "src", tmp_path / "dist" / "lambda_function.zip"
    source.mkdir()
    write_template(
        tmp_path,
        "Globals:\n"
        "  Function:\n"
        "    Runtime: python3.12\n"
        "Resources:\n"
        "  FromSource:\n"
        "    Type: AWS::Serverless::Function\n"
        "    Properties: {CodeUri: src/, Handler: app.main.handler}\n"
        "  FromZip:\n"
        "    Type: AWS::Serverless::Function\n"
        "    Properties: {CodeUri: dist/lambda_function.zip, Handler: app.zip.handler}\n"
        "  Elsewhere:\n"
        "    Type: AWS::Serverless::Function\n"
        "    Properties: {CodeUri: other/, Handler: other.handler}\n"
        "  Computed:\n"
        "    Type: AWS::Serverless::Function\n"
        "    Properties: {CodeUri: src/, Handler: !Sub '${Name}.handler'}\n"
        "  NodeFunction:\n"
        "    Type: AWS::Serverless::Function\n"
        "    Properties: {CodeUri: src/, Handler: index.handler, Runtime: nodejs22.x}\n",
    )

    handlers = template_handlers(tmp_path, [source, archive])

    assert [(h.function, h.handler) for h in handlers] == [
        ("FromSource", "app.main.handler"),
        ("FromZip", "app.zip.handler"),
    ]


def test_an_extension_module_is_a_handler_module_too() -> None:
    handler = Handler("Function", "fast.handler.handler", "template.yaml")

    assert handler.found_in({"fast/handler.cpython-312-x86_64-linux-gnu.so"})
    assert not handler.found_in({"fast/other.py", "fast/handler.txt"})


def test_a_template_that_is_not_yaml_is_bad_input(
    service: Path, fleece: Fleece
) -> None:
    (service / "template.yaml").write_text("Resources: [unclosed\n")

    code, _, err = fleece("build", str(service))

    assert code == 2
    assert err.startswith(f"Error: {service / 'template.yaml'}: not valid YAML (line")


# -- symbolic links ---------------------------------------------------------------


def test_a_link_to_nothing_is_skipped_with_a_warning(
    service: Path, fleece: Fleece
) -> None:
    # An editor's lock file: a link to "user@host.pid", which is no file.
    (service / "src" / "demo" / ".#handler.py").symlink_to("someone@laptop.4242")

    code, out, err = fleece("build", str(service))

    assert code == 0
    assert err == (
        f"Warning: skipped {service / 'src'}/demo/.#handler.py: a symbolic link "
        "to nothing (someone@laptop.4242)\n"
    )
    assert "demo/.#handler.py" not in names(zip_of(service))
    assert out.startswith("Built ")


def test_an_excluded_link_to_nothing_is_not_mentioned(
    service: Path, fleece: Fleece
) -> None:
    (service / "src" / "demo" / ".#handler.py").symlink_to("someone@laptop.4242")

    code, _, err = fleece("build", str(service), "--exclude", ".#*")

    assert (code, err) == (0, "")


def test_a_link_to_a_parent_folder_is_refused_in_one_line(
    service: Path, fleece: Fleece
) -> None:
    (service / "src" / "demo" / "again").symlink_to("..")

    code, out, err = fleece("build", str(service))

    assert (code, out) == (2, "")
    assert err == (
        f"Error: {service / 'src'}/demo/again: a symbolic link to one of its own "
        "parent folders, which would make the zip endless: remove it, or leave "
        "it out with --exclude\n"
    )
    assert not zip_of(service).exists()


def test_links_that_point_at_each_other_are_refused_in_one_line(
    service: Path, fleece: Fleece
) -> None:
    (service / "src" / "ping").symlink_to("pong")
    (service / "src" / "pong").symlink_to("ping")

    code, _, err = fleece("build", str(service))

    assert code == 2
    assert err.count("\n") == 1
    assert "a symbolic link that loops" in err


def test_links_to_files_and_folders_elsewhere_are_followed(
    service: Path, fleece: Fleece, tmp_path: Path
) -> None:
    shared = tmp_path / "shared"
    (shared / "lib").mkdir(parents=True)
    (shared / "lib" / "util.py").write_text("SHARED = True\n")
    (shared / "settings.json").write_text("{}\n")
    (service / "src" / "lib").symlink_to(shared / "lib")
    (service / "src" / "settings.json").symlink_to(shared / "settings.json")

    code, _, err = fleece("build", str(service))

    assert (code, err) == (0, "")
    entries = names(zip_of(service))
    assert {"lib/util.py", "settings.json"} <= set(entries)


# -- build leftovers ----------------------------------------------------------------


def test_build_leftovers_are_never_zipped_and_change_nothing(
    service: Path, fleece: Fleece, tmp_path: Path
) -> None:
    clean = tmp_path / "clean"
    shutil.copytree(service, clean)
    src = service / "src"
    (src / "demo.egg-info").mkdir()  # pip install -e '.[dev]'
    (src / "demo.egg-info" / "PKG-INFO").write_text("Name: demo\n")
    for cache in (".pytest_cache", ".mypy_cache", ".ruff_cache", "demo/__pycache__"):
        (src / cache).mkdir()
        (src / cache / "leftover").write_text("x\n")
    (src / "demo" / "stale.pyc").write_bytes(b"\x00")
    vendored = write_local_package(src / "vendor" / "tool")
    (vendored / "build" / "lib").mkdir(parents=True)  # pip's in-tree build
    (vendored / "build" / "lib" / "tool.py").write_text("OLD = True\n")
    write_local_package(clean / "src" / "vendor" / "tool")

    assert fleece("build", str(service))[0] == 0
    assert fleece("build", str(clean))[0] == 0

    entries = names(zip_of(service))
    assert not [n for n in entries if "egg-info" in n or "_cache" in n]
    assert not [n for n in entries if "/build/" in n or n.endswith("stale.pyc")]
    assert "vendor/tool/pyproject.toml" in entries
    assert sha256(zip_of(service)) == sha256(zip_of(clean))


def test_a_build_folder_of_the_code_itself_is_zipped(
    service: Path, fleece: Fleece
) -> None:
    # demo/build/ is a package of the service, not a project's build output.
    (service / "src" / "demo" / "build").mkdir()
    (service / "src" / "demo" / "build" / "__init__.py").write_text("STEPS = []\n")

    assert fleece("build", str(service))[0] == 0

    assert "demo/build/__init__.py" in names(zip_of(service))


def test_a_named_pipe_is_skipped_with_a_warning_not_read(
    service: Path, fleece: Fleece
) -> None:
    # Reading a pipe nobody writes to would never end.
    os.mkfifo(service / "src" / "demo" / "events.fifo")

    code, _, err = fleece("build", str(service))

    assert code == 0
    assert err == (
        f"Warning: skipped {service / 'src'}/demo/events.fifo: not a regular "
        "file (a socket, pipe or device)\n"
    )
    assert "demo/events.fifo" not in names(zip_of(service))
