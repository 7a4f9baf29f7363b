"""`fleece build --docker`: what fleece asks of the Docker engine.

No engine runs here, so the client that ``docker.from_env()`` returns is
replaced by a fake at that boundary. It records the calls and, as pip in the
container would, writes an installed package into the output mount; the rest
of the build (cache, zip) runs for real.
"""

import os
import subprocess
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import pytest
from docker.errors import ImageNotFound

from fleece.build.artifact import requirement_inputs
from fleece.build.container import container_script
from tests.builds.build_support import Fleece, MakeService


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
        self.pulls: list[tuple[str, str, str]] = []
        self.runs: list[dict[str, Any]] = []
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
        if self.status == 0:
            package = output_of(self.runs[-1]) / "nativepkg"
            package.mkdir()
            (package / "__init__.py").write_text("BUILT_IN_CONTAINER = True\n")
        logs = [b"Collecting nativepkg\n", b"ERROR: compiler exploded\n"]
        self.container = FakeContainer(self.status, logs[: 2 if self.status else 1])
        return self.container


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
    [run] = engine.runs
    assert run["image"] == "public.ecr.aws/sam/build-python3.12:latest-arm64"
    assert run["platform"] == "linux/arm64"
    assert run["command"][:2] == ["/bin/bash", "-c"]
    script = run["command"][2]
    assert (
        "pip install --disable-pip-version-check --no-input --progress-bar=off"
        in script
    )
    assert "cd /tmp/fleece-service/src\n" in script
    assert "--no-compile --target /fleece/out --requirement requirements.txt" in script
    assert run["command"][3:] == ["fleece-build"]  # no system packages asked for
    assert run["volumes"] == {
        str(service.resolve()): {"bind": "/fleece/service", "mode": "ro"},
        str(output_of(run)): {"bind": "/fleece/out", "mode": "rw"},
    }
    assert run["working_dir"] == "/fleece/service"
    assert run["environment"] == {
        "PIP_INDEX_URL": "https://pypi.example.com/simple/",
        "PIP_TIMEOUT": "60",
    }
    assert engine.container is not None and engine.container.removed
    with zipfile.ZipFile(service / "dist" / "lambda_function.zip") as built:
        assert "nativepkg/__init__.py" in built.namelist()
        assert "demo/handler.py" in built.namelist()
    assert "(python3.12, arm64, dependencies installed)" in out


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


def test_requirements_reach_files_beside_the_source_folder_in_the_container(
    engine: FakeDocker, make_service: MakeService, fleece: Fleece
) -> None:
    service = make_service("-r ../common.txt\n-c ../constraints.txt\n../libs/pkg\n")
    (service / "common.txt").write_text("nativepkg\n")
    (service / "constraints.txt").write_text("nativepkg==1.0\n")
    (service / "libs" / "pkg").mkdir(parents=True)
    (service / "libs" / "pkg" / "setup.py").write_text("")

    code, _, err = fleece("build", str(service), "--docker")

    assert (code, err) == (0, "")
    [run] = engine.runs
    assert run["volumes"][str(service.resolve())] == {
        "bind": "/fleece/service",
        "mode": "ro",
    }
    assert (
        "cd /fleece/service\n"
        "cp -a --parents -- common.txt constraints.txt libs/pkg src/requirements.txt "
        "/tmp/fleece-service/\n"
        "cd /tmp/fleece-service/src\n"
    ) in run["command"][2]


def test_a_requirement_outside_the_service_folder_is_refused_before_docker_runs(
    engine: FakeDocker, make_service: MakeService, fleece: Fleece
) -> None:
    service = make_service("-r ../../shared.txt\n")
    (service.parent / "shared.txt").write_text("nativepkg==1.0\n")

    code, out, err = fleece("build", str(service), "--docker")

    assert (code, out) == (2, "")
    assert err.count("\n") == 1
    assert "shared.txt: outside the service folder" in err
    assert engine.runs == []


def test_the_container_script_gives_the_output_back_when_pip_fails(
    tmp_path: Path,
) -> None:
    # The script itself, run by a real bash with stand-ins for the image's
    # python (pip fails halfway) and chown (records what it was asked).
    service, output, work, tools = (tmp_path / n for n in ("svc", "out", "w", "bin"))
    (service / "src").mkdir(parents=True)
    (service / "src" / "requirements.txt").write_text("-r ../common.txt\n../libs/p\n")
    (service / "common.txt").write_text("nativepkg\n")
    (service / "libs" / "p").mkdir(parents=True)
    (service / "libs" / "p" / "setup.py").write_text("")
    output.mkdir()
    tools.mkdir()
    log = tmp_path / "log"
    fake_pip = (
        f"pwd > {log}\nls ../common.txt ../libs/p/setup.py >> {log}\n"
        f"touch {output}/half-installed\nexit 7\n"
    )
    for name, body in {
        "python": fake_pip,
        "chown": f'echo "chown $*" >> {log}\n',
    }.items():
        (tools / name).write_text("#!/bin/sh\n" + body)
        (tools / name).chmod(0o755)
    inputs = requirement_inputs(service / "src" / "requirements.txt").paths()
    script = container_script(
        "src/requirements.txt",
        sorted(p.relative_to(service.resolve()).as_posix() for p in inputs),
        "1000:1000",
        service=str(service),
        output=str(output),
        work=str(work),
    )

    run = subprocess.run(
        ["/bin/bash", "-c", script, "fleece-build"],
        env={**os.environ, "PATH": f"{tools}:{os.environ['PATH']}"},
        capture_output=True,
        text=True,
    )

    assert run.returncode == 7, run.stderr
    assert log.read_text().splitlines() == [
        str(work / "src"),
        "../common.txt",
        "../libs/p/setup.py",
        f"chown -R 1000:1000 {output}",
    ]
