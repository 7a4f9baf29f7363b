"""Bytecode for the runtime's Python: checked hash-based .pyc beside every
module, from the interpreter a build finds, reproducibly; or one note why not."""

import json
import os
import subprocess
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest

from fleece.build.bytecode import (
    Interpreter,
    find_interpreter,
    interpreter_candidates,
)
from tests.builds.build_support import (
    Fleece,
    IndexServer,
    MakeService,
    contents,
    hide_pythons,
    names,
    sha256,
    zip_of,
)

ServeIndex = Callable[[Path], IndexServer]
CHECKED_HASH = 0b11  # PEP 552 flags: hash-based, check the source


def unpack(archive: Path, folder: Path) -> Path:
    with zipfile.ZipFile(archive) as opened:
        opened.extractall(folder)
    return folder


def run_lambda_style(
    python: str, task: Path, code: str
) -> subprocess.CompletedProcess[str]:
    """``code`` in a fresh ``python`` that imports from ``task`` as Lambda does:
    read-only (no bytecode written), the task folder first on sys.path."""
    return subprocess.run(
        [
            python,
            "-I",
            "-v",
            "-c",
            f"import sys; sys.path.insert(0, {str(task)!r}); {code}",
        ],
        capture_output=True,
        text=True,
        env={"PYTHONDONTWRITEBYTECODE": "1", "PATH": os.environ["PATH"]},
    )


def test_modules_get_checked_hash_bytecode_that_the_runtime_s_python_loads(
    index: IndexServer,
    make_service: MakeService,
    fleece: Fleece,
    python312: Interpreter,
    tmp_path: Path,
) -> None:
    service = make_service("requests\n")

    assert fleece("build", str(service))[0] == 0

    entries = contents(zip_of(service))
    handler_pyc = entries["demo/__pycache__/handler.cpython-312.pyc"]
    assert handler_pyc[:4] == bytes.fromhex(python312.magic)
    assert int.from_bytes(handler_pyc[4:8], "little") == CHECKED_HASH
    task = unpack(zip_of(service), tmp_path / "task")
    run = run_lambda_style(python312.path, task, "import demo.handler, requests")
    assert run.returncode == 0, run.stderr
    for module in ("demo/handler", "requests/sessions", "fleece_runtime"):
        folder, name = os.path.split(module)
        pyc = task / folder / "__pycache__" / f"{name}.cpython-312.pyc"
        assert f"# code object from '{pyc}'" in run.stderr


def test_a_module_edited_after_the_build_runs_its_new_source(
    serve_index: ServeIndex,
    make_service: MakeService,
    fleece: Fleece,
    python312: Interpreter,
    tmp_path: Path,
) -> None:
    service = make_service("")
    assert fleece("build", str(service))[0] == 0
    task = unpack(zip_of(service), tmp_path / "task")
    # As in the Lambda console: the source changes, its bytecode stays.
    with (task / "demo" / "handler.py").open("a") as handler:
        handler.write("EDITED_IN_THE_CONSOLE = True\n")

    run = run_lambda_style(
        python312.path,
        task,
        "import demo.handler; print(demo.handler.EDITED_IN_THE_CONSOLE)",
    )

    assert run.returncode == 0, run.stderr
    assert run.stdout == "True\n"


def test_bytecode_is_the_same_whichever_build_compiled_it(
    serve_index: ServeIndex,
    make_service: MakeService,
    fleece: Fleece,
    python312: Interpreter,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    service = make_service("")
    assert fleece("build", str(service))[0] == 0
    first = sha256(zip_of(service))
    # Another cache: nothing remembered, everything compiled again.
    monkeypatch.setenv("FLEECE_CACHE_DIR", str(tmp_path / "fresh-cache"))
    monkeypatch.setenv("PYTHONHASHSEED", "1234")

    assert fleece("build", str(service))[0] == 0

    assert sha256(zip_of(service)) == first


def test_without_an_interpreter_of_the_runtime_s_version_the_build_says_so_once(
    index: IndexServer,
    make_service: MakeService,
    fleece: Fleece,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    service = make_service("requests\n")
    hide_pythons(monkeypatch, tmp_path, "3.12")

    code, out, err = fleece("build", str(service))

    assert code == 0
    assert err == (
        "Warning: no Python 3.12 found (on PATH, in pyenv's or uv's Pythons): the "
        "zip ships without bytecode, so Lambda compiles its modules at every cold "
        "start; install Python 3.12 (uv python install 3.12), build with --docker, "
        "or pass --no-compile\n"
    )
    assert not [n for n in names(zip_of(service)) if n.endswith(".pyc")]
    assert ", no bytecode)" in out


def test_no_compile_ships_no_bytecode_and_says_nothing(
    serve_index: ServeIndex,
    make_service: MakeService,
    fleece: Fleece,
    python312: Interpreter,
) -> None:
    service = make_service("")

    code, _, err = fleece("build", str(service), "--no-compile")

    assert (code, err) == (0, "")
    assert not [n for n in names(zip_of(service)) if "__pycache__" in n]


def test_a_module_that_does_not_compile_ships_without_bytecode_and_is_named(
    serve_index: ServeIndex,
    make_service: MakeService,
    fleece: Fleece,
    python312: Interpreter,
) -> None:
    service = make_service("")
    (service / "src" / "demo" / "broken.py").write_text("def oops(:\n")

    code, _, err = fleece("build", str(service))

    assert code == 0
    assert err.startswith(
        "Warning: 1 module of the source does not compile for Python 3.12 and "
        f"ships without bytecode: {service / 'src'}/demo/broken.py (SyntaxError"
    )
    assert err.count("\n") == 1
    entries = names(zip_of(service))
    assert "demo/broken.py" in entries
    assert "demo/__pycache__/broken.cpython-312.pyc" not in entries
    assert "demo/__pycache__/handler.cpython-312.pyc" in entries


# -- finding the interpreter -------------------------------------------------------


def fake_python(folder: Path, version: str, log: Path | None = None) -> Path:
    """An executable that answers the build's question as CPython ``version``."""
    folder.mkdir(parents=True, exist_ok=True)
    python = folder / f"python{version.rsplit('.', 1)[0]}"
    identity = json.dumps(
        {"version": version, "implementation": "cpython", "magic": "00", "tag": "t"}
    )
    record = f"echo asked >> {log}\n" if log else ""
    python.write_text(f"#!/bin/sh\n{record}echo '{identity}'\nexit 3\n")
    python.chmod(0o755)
    return python


def test_candidates_come_from_path_then_pyenv_then_uv_newest_first(
    tmp_path: Path,
) -> None:
    shims, bin_ = tmp_path / "pyenv" / "shims", tmp_path / "bin"
    fake_python(shims, "3.13.1")
    fake_python(bin_, "3.13.2")
    for version in ("3.13.0", "3.13.10", "3.13.9", "3.12.4", "3.13.1t"):
        fake_python(tmp_path / "pyenv" / "versions" / version / "bin", version)
    for version in ("3.13.3", "3.13.11"):
        name = f"cpython-{version}-linux-x86_64-gnu"
        fake_python(tmp_path / "uv" / name / "bin", version)
    environ = {
        "PATH": f"{shims}:{bin_}",
        "PYENV_ROOT": str(tmp_path / "pyenv"),
        "UV_PYTHON_INSTALL_DIR": str(tmp_path / "uv"),
    }

    candidates = list(interpreter_candidates("3.13", environ))

    versions = [Path(c).parents[1].name for c in candidates]
    assert candidates[0] == str(bin_ / "python3.13")  # shims are skipped
    assert versions[1:] == [
        "3.13.10",
        "3.13.9",
        "3.13.0",
        "cpython-3.13.11-linux-x86_64-gnu",
        "cpython-3.13.3-linux-x86_64-gnu",
    ]


def test_an_interpreter_of_another_version_is_passed_over(tmp_path: Path) -> None:
    fake_python(tmp_path / "bin", "3.12.0")  # claims to be python3.12 by name...
    (tmp_path / "bin" / "python3.12").rename(tmp_path / "bin" / "python3.13")
    environ = {"PATH": str(tmp_path / "bin"), "PYENV_ROOT": str(tmp_path / "none")}
    environ["UV_PYTHON_INSTALL_DIR"] = str(tmp_path / "none")

    assert find_interpreter("3.13", tmp_path / "memo.json", environ) is None


def test_what_an_interpreter_answered_is_asked_once(tmp_path: Path) -> None:
    log = tmp_path / "asked"
    python = fake_python(tmp_path / "bin", "3.13.4", log)
    environ = {"PATH": str(tmp_path / "bin"), "PYENV_ROOT": str(tmp_path / "none")}
    environ["UV_PYTHON_INSTALL_DIR"] = str(tmp_path / "none")
    memo = tmp_path / "memo.json"

    first = find_interpreter("3.13", memo, environ)
    second = find_interpreter("3.13", memo, environ)
    python.write_text(python.read_text() + "\n")  # a new interpreter there
    find_interpreter("3.13", memo, environ)

    assert first == second == Interpreter(str(python), "3.13.4", "00", "t")
    assert log.read_text() == "asked\nasked\n"


def test_excludes_leave_bytecode_out_too(
    index: IndexServer,
    make_service: MakeService,
    fleece: Fleece,
    python312: Interpreter,
) -> None:
    service = make_service("idna\n")

    code, _, _ = fleece("build", str(service), "--exclude", "*.pyc")

    assert code == 0
    entries = names(zip_of(service))
    assert "idna/core.py" in entries and "demo/handler.py" in entries
    assert not [n for n in entries if n.endswith(".pyc")]
