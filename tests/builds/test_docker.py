"""`fleece build --docker`: what fleece asks of the Docker engine.

No engine runs here, so the client that ``docker.from_env()`` returns is
replaced by a fake at that boundary. It records the calls and, as pip in the
container would, writes an installed package into the output mount; asked to
compile, it runs the command with this machine's Python 3.12 in the mounted
folder, as the image's Python would. The rest of the build (staging, cache,
zip) runs for real.
"""

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import pytest
from docker.errors import ImageNotFound

from fleece.build.bytecode import Interpreter
from fleece.build.container import COMPILE_MOUNT, container_script
from tests.builds.build_support import (
    Fleece,
    MakeService,
    hide_pythons,
    names,
    write_local_package,
)


def output_of(run: dict[str, Any]) -> Path:
    """The host folder a container run mounts as its output."""
    volumes: dict[str, dict[str, str]] = run["volumes"]
    return next(Path(h) for h, b in volumes.items() if b["bind"] == "/fleece/out")


class FakeContainer:
    def __init__(self, status: int, logs: list[bytes]) -> None:
        self.status = status
        self.log_chunks = logs
        self.removed = False

    def logs(self, stream: bool, follow: bool) -> Iterator[bytes]:
        return iter(self.log_chunks)

    def wait(self) -> dict[str, int]:
        return {"StatusCode": self.status}

    def remove(self, force: bool) -> None:
        self.removed = True


class FakeDocker:
    """The parts of ``docker.DockerClient`` that fleece uses."""

    def __init__(self, *, image_present: bool = False, status: int = 0) -> None:
        self.image_present = image_present
        self.status = status
        self.python: str | None = None  # what runs a compile command
        self.pulls: list[tuple[str, str, str]] = []
        self.runs: list[dict[str, Any]] = []
        self.staged: dict[str, str] = {}  # the requirements pip was given
        self.container: FakeContainer | None = None
        self.images = self
        self.containers = self

    # client.images
    def get(self, name: str) -> object:
        if not self.image_present:
            raise ImageNotFound(f"No such image: {name}")
        return object()

    def pull(self, repository: str, tag: str, platform: str) -> object:
        self.pulls.append((repository, tag, platform))
        return object()

    # client.containers
    def run(self, image: str, command: list[str], **options: Any) -> FakeContainer:
        self.runs.append({"image": image, "command": command, **options})
        if command[0] == "python":
            self.container = self._compile(command, options)
            return self.container
        staged = Path(options["working_dir"])
        self.staged = {
            p.relative_to(staged).as_posix(): p.read_text()
            for p in staged.rglob("*")
            if p.is_file()
        }
        if self.status == 0:
            package = output_of(self.runs[-1]) / "nativepkg"
            package.mkdir()
            (package / "__init__.py").write_text("BUILT_IN_CONTAINER = True\n")
        logs = [b"Collecting nativepkg\n", b"ERROR: compiler exploded\n"]
        self.container = FakeContainer(self.status, logs[: 2 if self.status else 1])
        return self.container

    def _compile(self, command: list[str], options: dict[str, Any]) -> FakeContainer:
        assert self.python is not None, "no Python to stand in for the image's"
        [(folder, bind)] = options["volumes"].items()
        assert bind == {"bind": options["working_dir"], "mode": "rw"}
        done = subprocess.run(
            [self.python, *command[1:]],
            cwd=folder,
            env=options["environment"],
            capture_output=True,
        )
        return FakeContainer(done.returncode, [done.stdout[:7], done.stdout[7:]])


@pytest.fixture
def engine(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> FakeDocker:
    fake = FakeDocker()
    monkeypatch.setattr(docker, "from_env", lambda: fake)
    monkeypatch.setenv("FLEECE_CACHE_DIR", str(tmp_path / "fleece-cache"))
    for name in [n for n in os.environ if n.startswith("PIP_")]:
        monkeypatch.delenv(name)
    return fake


def test_dependencies_are_installed_in_the_sam_build_image_of_the_runtime(
    engine: FakeDocker,
    make_service: MakeService,
    fleece: Fleece,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    service = make_service("nativepkg==1.0\n", architecture="arm64")
    monkeypatch.setenv("PIP_INDEX_URL", "https://pypi.example.com/simple/")
    monkeypatch.setenv("PIP_TIMEOUT", "60")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-for-the-container")

    code, out, err = fleece("build", str(service), "--docker")

    assert (code, err) == (0, "")
    assert engine.pulls == [
        ("public.ecr.aws/sam/build-python3.12", "latest-arm64", "linux/arm64")
    ]
    [run] = engine.runs  # this machine's Python 3.12 compiled the modules
    assert run["image"] == "public.ecr.aws/sam/build-python3.12:latest-arm64"
    assert run["platform"] == "linux/arm64"
    assert run["command"][:2] == ["/bin/bash", "-c"]
    script = run["command"][2]
    assert (
        "pip install --disable-pip-version-check --no-input --progress-bar=off"
        in script
    )
    staged = run["working_dir"]
    assert f"cd {staged}/requirements/0\n" in script
    assert "--no-compile --target /fleece/out --requirement requirements.txt" in script
    assert run["command"][3:] == ["fleece-build"]  # no system packages asked for
    # Only the staged copy of the requirements, at the same path, and the output.
    assert run["volumes"] == {
        staged: {"bind": staged, "mode": "rw"},
        str(output_of(run)): {"bind": "/fleece/out", "mode": "rw"},
    }
    assert not staged.startswith(str(service))
    assert run["environment"] == {
        "PIP_INDEX_URL": "https://pypi.example.com/simple/",
        "PIP_TIMEOUT": "60",
    }
    assert engine.container is not None and engine.container.removed
    entries = names(service / "dist" / "lambda_function.zip")
    assert "nativepkg/__init__.py" in entries
    assert "nativepkg/__pycache__/__init__.cpython-312.pyc" in entries
    assert "demo/handler.py" in entries
    assert "(python3.12, arm64, dependencies installed, bytecode by Python 3.12" in out


def test_system_packages_are_arguments_of_the_script_not_shell_text(
    engine: FakeDocker, make_service: MakeService, fleece: Fleece
) -> None:
    service = make_service("nativepkg==1.0\n")
    engine.image_present = True

    code, _, _ = fleece(
        "build", str(service), "--docker", "--dependencies", "libffi-devel, gcc"
    )

    assert code == 0
    assert engine.pulls == []  # the image was there already
    [run] = engine.runs
    assert run["platform"] == "linux/amd64"
    assert run["image"].endswith("build-python3.12:latest-x86_64")
    assert run["command"][3:] == ["fleece-build", "libffi-devel", "gcc"]
    assert 'dnf install -y "$@"' in run["command"][2]


def test_failed_container_build_exits_1_with_its_last_line(
    engine: FakeDocker, make_service: MakeService, fleece: Fleece
) -> None:
    service = make_service("nativepkg==1.0\n")
    engine.status = 1

    code, out, err = fleece("build", str(service), "--docker")

    assert (code, out) == (1, "")
    assert err == (
        "Error: the build in public.ecr.aws/sam/build-python3.12:latest-x86_64 "
        "failed (exit 1): ERROR: compiler exploded\n"
    )
    assert not (service / "dist" / "lambda_function.zip").exists()


def test_docker_builds_are_cached_apart_from_local_ones(
    engine: FakeDocker, make_service: MakeService, fleece: Fleece
) -> None:
    service = make_service("nativepkg==1.0\n")
    assert fleece("build", str(service), "--docker")[0] == 0

    code, out, _ = fleece("build", str(service), "--docker")

    assert code == 0
    assert "dependencies from cache" in out
    assert len(engine.runs) == 1
    assert (
        "from cache"
        not in fleece("build", str(service), "--docker", "--dependencies", "gcc")[1]
    )


def test_without_a_docker_engine_the_build_says_so_in_one_line(
    make_service: MakeService,
    fleece: Fleece,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    # The real SDK, pointed at a socket nobody listens on.
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-docker.sock")
    monkeypatch.setenv("FLEECE_CACHE_DIR", str(tmp_path / "fleece-cache"))
    service = make_service("nativepkg==1.0\n")

    code, out, err = fleece("build", str(service), "--docker")

    assert (code, out) == (1, "")
    assert err == (
        "Error: no Docker engine answered: start Docker, or build without --docker\n"
    )


def test_requirements_anywhere_reach_the_container_as_staged_copies(
    engine: FakeDocker, make_service: MakeService, fleece: Fleece
) -> None:
    service = make_service(
        "-r ../../shared.txt\n-c ../constraints.txt\n-e ../libs/pkg\n"
    )
    (service.parent / "shared.txt").write_text("nativepkg\n")  # outside the service
    (service / "constraints.txt").write_text("nativepkg==1.0\n")
    write_local_package(service / "libs" / "pkg")

    code, _, err = fleece("build", str(service), "--docker")

    assert (code, err) == (0, "")
    [run] = engine.runs
    staged = Path(run["working_dir"])
    top = engine.staged["requirements/0/requirements.txt"].splitlines()
    assert top[-3:] == [
        f"-r {staged}/requirements/1/shared.txt",
        f"-c {staged}/requirements/2/constraints.txt",
        f"{staged}/local/0/pkg",  # no longer editable
    ]
    assert engine.staged["requirements/1/shared.txt"] == "nativepkg\n"
    assert engine.staged["local/0/pkg/localpkg/__init__.py"] == "VALUE = 1\n"


def test_modules_are_compiled_in_the_build_image_when_no_python_is_here(
    engine: FakeDocker,
    make_service: MakeService,
    fleece: Fleece,
    python312: Interpreter,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    service = make_service("nativepkg==1.0\n")
    hide_pythons(monkeypatch, tmp_path, "3.12")
    engine.python = python312.path

    code, out, err = fleece("build", str(service), "--docker")

    assert (code, err) == (0, "")
    install, dependencies, source = engine.runs
    assert install["command"][0] == "/bin/bash"
    for run in (dependencies, source):
        assert run["image"] == "public.ecr.aws/sam/build-python3.12:latest-x86_64"
        assert run["command"][:3] == ["python", "-S", "-c"]
        assert run["working_dir"] == COMPILE_MOUNT
        assert run["user"] == f"{os.getuid()}:{os.getgid()}"
        assert run["environment"]["PYTHONHASHSEED"] == "0"
    entries = names(service / "dist" / "lambda_function.zip")
    assert "nativepkg/__pycache__/__init__.cpython-312.pyc" in entries
    assert "demo/__pycache__/handler.cpython-312.pyc" in entries
    assert "bytecode by public.ecr.aws/sam/build-python3.12:latest-x86_64" in out


def test_the_container_script_gives_the_output_back_when_pip_fails(
    tmp_path: Path,
) -> None:
    # The script itself, run by a real bash with stand-ins for the image's
    # python (pip fails halfway) and chown (records what it was asked).
    staged, output, tools = (tmp_path / n for n in ("staged", "out", "bin"))
    requirements = staged / "requirements" / "0" / "requirements.txt"
    requirements.parent.mkdir(parents=True)
    requirements.write_text("nativepkg\n")
    output.mkdir()
    tools.mkdir()
    log = tmp_path / "log"
    fake_pip = f"pwd > {log}\ntouch {output}/half-installed\nexit 7\n"
    for name, body in {
        "python": fake_pip,
        "chown": f'echo "chown $*" >> {log}\n',
    }.items():
        (tools / name).write_text("#!/bin/sh\n" + body)
        (tools / name).chmod(0o755)
    script = container_script(
        str(requirements), str(staged), "1000:1000", output=str(output)
    )

    run = subprocess.run(
        ["/bin/bash", "-c", script, "fleece-build"],
        env={**os.environ, "PATH": f"{tools}:{os.environ['PATH']}"},
        capture_output=True,
        text=True,
    )

    assert run.returncode == 7, run.stderr
    assert log.read_text().splitlines() == [
        str(requirements.parent),
        f"chown -R 1000:1000 {output} {staged}",
    ]
