"""Every row of the update promise, replayed with two installed fleece versions.

fleece A is this checkout's wheel; fleece B is the same checkout one minor
version later, with a template that changes: a line added to template.yaml and
README.md, events/sqs_receive.json renamed to events/sqs_batch.json,
events/s3_put.json dropped, CHANGELOG.md added, and a newer runtime. Each is
installed from its wheel into a fresh environment, and runs as a user runs it.
A service is made by A, edited by the user, committed, and updated by B.
"""

import json
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from packaging.version import Version

from tests.venvs import (
    REPO,
    build_fleece_wheel,
    create_environment,
    offline_environ,
    pip_install,
)

from .scenario import (
    Run,
    append,
    assert_nothing_lost,
    commit_all,
    edit,
    git,
    read_tree,
    recorded_base,
)

pytestmark = pytest.mark.slow

HANDLER = "src/demo/handler.py"
RUNTIME = "src/fleece_runtime.py"
NEWER_RUNTIME_LINE = "# A newer runtime: fleece B."


@dataclass(frozen=True)
class Fleece:
    """One installed fleece: its version and its console script."""

    version: str
    script: Path
    scratch: Path

    def __call__(self, *args: str) -> Run:
        """Run ``fleece ARGS`` as a user would (offline, its own TMPDIR)."""
        result = subprocess.run(
            [str(self.script), *args],
            capture_output=True,
            text=True,
            env=self.environ(),
            timeout=300,
        )
        return Run(result.returncode, result.stdout, result.stderr)

    def environ(self) -> dict[str, str]:
        """The environment the command runs in."""
        return offline_environ(
            TMPDIR=str(self.scratch),
            GIT_AUTHOR_NAME="Test",
            GIT_AUTHOR_EMAIL="test@example.com",
            GIT_COMMITTER_NAME="Test",
            GIT_COMMITTER_EMAIL="test@example.com",
        )


def _install(wheel: Path, folder: Path) -> Fleece:
    python = create_environment(folder / "env")
    installed = pip_install(python, str(wheel))
    assert installed.returncode == 0, installed.stdout + installed.stderr
    scratch = folder / "tmp"
    scratch.mkdir()
    version = wheel.name.split("-")[1]
    return Fleece(version, python.parent / "fleece", scratch)


def _newer_checkout(folder: Path) -> Path:
    """A copy of this checkout, one minor version on, whose template changed."""
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info")
    for name in ("generator", "templates", "runtime_stub"):
        shutil.copytree(REPO / name, folder / name, ignore=ignore)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, folder / name)
    pyproject = folder / "pyproject.toml"
    found = re.search(r'^version = "(.+)"$', pyproject.read_text(), re.M)
    assert found is not None, "pyproject.toml names no version"
    current = Version(found[1])
    newer = f"{current.major}.{current.minor + 1}.0"
    pyproject.write_text(
        pyproject.read_text().replace(
            f'version = "{current}"', f'version = "{newer}"', 1
        )
    )
    project = folder / "templates/service/project"
    sam = project / "template.yaml.jinja"
    sam.write_text("# Kept current by `fleece update`.\n" + sam.read_text())
    append(project / "README.md.jinja", "\n## Changes\n\nSee CHANGELOG.md.\n")
    (project / "events/sqs_receive.json").rename(project / "events/sqs_batch.json")
    (project / "events/s3_put.json").unlink()
    (project / "CHANGELOG.md").write_text("# Changelog\n\n- Started from fleece.\n")
    append(folder / "runtime_stub/fleece_runtime.py", f"\n{NEWER_RUNTIME_LINE}\n")
    return folder


@pytest.fixture(scope="session")
def fleece_a(fleece_wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Fleece:
    """This checkout's fleece, installed from its wheel."""
    return _install(fleece_wheel, tmp_path_factory.mktemp("fleece-a"))


@pytest.fixture(scope="session")
def fleece_b(tmp_path_factory: pytest.TempPathFactory) -> Fleece:
    """The next fleece, with a changed template, installed from its wheel."""
    checkout = _newer_checkout(tmp_path_factory.mktemp("fleece-b-src"))
    wheel = build_fleece_wheel(tmp_path_factory.mktemp("fleece-b-wheel"), checkout)
    return _install(wheel, tmp_path_factory.mktemp("fleece-b"))


@pytest.fixture
def service(tmp_path: Path, fleece_a: Fleece) -> Iterator[Path]:
    """A service just made by fleece A (in its own git repository)."""
    root = tmp_path / "demo"
    created = fleece_a("new", "demo", str(root), "--defaults")
    assert created.code == 0, created.stderr
    yield root


def _verdicts_agree(fleece: Fleece, service: Path) -> Run:
    """Run fleece's check, then its update; assert they agree; the update's run."""
    check = fleece("check", str(service), "--json")
    update = fleece("update", str(service))
    findings = json.loads(check.stdout)["findings"]
    blocking = [f"{f['path']}: {f['message']}" for f in findings if f["blocks_update"]]
    if not findings:
        assert update.code == 0 and "nothing to change" in update.stdout, update
    elif blocking:
        assert update.code == 2
        assert update.stderr == "Error: " + "\n".join(blocking) + "\n"
    else:
        assert update.code in (0, 1) and "Updated" in update.stdout, update
    return update


def _no_leftovers(service: Path, *installed: Fleece, killed: bool = False) -> None:
    """No temp file in the service, nothing left in fleece's TMPDIR.

    After a SIGKILL only fleece's own temp folders count: a kill that lands
    while copier is inside one of its own ``TemporaryDirectory`` blocks leaves
    that folder, and no process can clean up after SIGKILL.
    """
    assert [p.name for p in service.rglob("*.tmp")] == []
    for fleece in installed:
        names = [p.name for p in fleece.scratch.iterdir()]
        if killed:
            names = [name for name in names if not name.startswith("copier.")]
        assert names == []


def test_user_edits_survive_the_newer_template(
    service: Path, fleece_a: Fleece, fleece_b: Fleece
) -> None:
    append(
        service / HANDLER, "\n\ndef shout(text: str) -> str:\n    return text.upper()\n"
    )
    edit(service / "template.yaml", "MemorySize: 256", "MemorySize: 1024")
    (service / "events/apigw_rest_v1.json").unlink()
    (service / "notes.txt").write_text("mine\n")
    subprocess.run(
        "git grep -l 'def greet' | xargs sed -i 's/greet(/welcome(/g'",
        shell=True,
        cwd=service,
        check=True,
    )
    commit_all(service, "user edits")
    old_base, ours = recorded_base(service), read_tree(service)

    update = _verdicts_agree(fleece_b, service)

    assert update.code == 0, update.stderr
    after = read_tree(service)
    assert_nothing_lost(old_base, ours, recorded_base(service), after)
    assert (
        "welcome(" in after[HANDLER].decode()
        and "greet(" not in after[HANDLER].decode()
    )
    assert after["template.yaml"].startswith(b"# Kept current by `fleece update`.\n")
    assert b"MemorySize: 1024" in after["template.yaml"]
    assert "CHANGELOG.md" in after and "events/sqs_batch.json" in after
    assert "events/sqs_receive.json" not in after and "events/s3_put.json" not in after
    assert "events/apigw_rest_v1.json" not in after and after["notes.txt"] == b"mine\n"
    assert NEWER_RUNTIME_LINE in after[RUNTIME].decode()
    commit_all(service, "fleece update")
    assert fleece_b("check", str(service)).code == 0
    assert (
        '"kind": "fleece-outdated"' in fleece_a("check", str(service), "--json").stdout
    )
    _no_leftovers(service, fleece_a, fleece_b)


def test_update_moves_the_fleece_that_the_dev_extra_installs(
    service: Path, fleece_a: Fleece, fleece_b: Fleece
) -> None:
    pyproject = service / "pyproject.toml"
    edit(pyproject, '"pytest>=8",', '"pytest>=8",\n    "hypothesis>=6",')
    commit_all(service, "a dev tool of our own")

    update = _verdicts_agree(fleece_b, service)

    assert update.code == 0, update.stdout + update.stderr
    text = pyproject.read_text()
    assert f'"fleece=={fleece_b.version}",' in text
    assert f"fleece=={fleece_a.version}" not in text
    assert '"hypothesis>=6",' in text


def test_the_older_fleece_refuses_a_service_of_the_newer_one(
    tmp_path: Path, fleece_a: Fleece, fleece_b: Fleece
) -> None:
    service = tmp_path / "newer"
    assert fleece_b("new", "newer", str(service), "--defaults").code == 0
    before = read_tree(service)

    update = _verdicts_agree(fleece_a, service)

    assert update.code == 2
    assert (
        f"rendered by fleece {fleece_b.version}, newer than this fleece"
        in update.stderr
    )
    assert read_tree(service) == before
    allowed = fleece_a("update", str(service), "--allow-downgrade")
    assert allowed.code == 0 and not (service / "CHANGELOG.md").exists()


def test_a_windows_clone_merges_a_one_line_edit_cleanly(
    service: Path, fleece_a: Fleece, fleece_b: Fleece
) -> None:
    clone = service.parent / "windows"
    git(
        service.parent,
        "clone",
        "-q",
        "-c",
        "core.autocrlf=true",
        str(service),
        str(clone),
    )
    sam = clone / "template.yaml"
    assert b"\r\n" in sam.read_bytes()
    assert fleece_a("check", str(clone)).code == 0
    sam.write_bytes(sam.read_bytes().replace(b"MemorySize: 256", b"MemorySize: 1024"))
    commit_all(clone, "one line")

    update = _verdicts_agree(fleece_b, clone)

    assert update.code == 0, update.stdout + update.stderr
    data = sam.read_bytes()
    assert data.startswith(b"# Kept current by `fleece update`.\r\n")
    assert b"MemorySize: 1024\r\n" in data and data.count(b"\n") == data.count(b"\r\n")
    stat = git(clone, "diff", "--numstat", "--", "template.yaml")
    assert stat.split()[:2] == ["1", "0"]
    commit_all(clone, "fleece update")
    assert fleece_b("check", str(clone)).code == 0


def test_links_out_of_the_service_are_never_written_through(
    service: Path, fleece_a: Fleece, fleece_b: Fleece
) -> None:
    shared = service.parent / "shared/events"
    shared.parent.mkdir()
    shutil.move(str(service / "events"), str(shared))
    (service / "events").symlink_to("../shared/events")
    shutil.move(str(service / "README.md"), str(service / "docs.md"))
    (service / "README.md").symlink_to("docs.md")
    commit_all(service, "shared events, README elsewhere")
    outside = read_tree(shared)

    update = _verdicts_agree(fleece_b, service)

    assert update.code == 0, update.stderr
    assert read_tree(shared) == outside
    assert "Note: skipped events/s3_put.json: the template dropped it" in update.stdout
    assert "Note: skipped events/sqs_batch.json: the template added it" in update.stdout
    assert (service / "README.md").is_symlink()
    assert "See CHANGELOG.md." in (service / "docs.md").read_text()


def test_kills_at_random_moments_are_finished_by_the_next_update(
    tmp_path: Path, fleece_a: Fleece, fleece_b: Fleece
) -> None:
    def made(name: str) -> Path:
        root = tmp_path / name / "demo"
        root.parent.mkdir()
        assert fleece_a("new", "demo", str(root), "--defaults").code == 0
        append(root / HANDLER, "\n\nMINE = True\n")
        commit_all(root, "mine")
        return root

    reference = made("reference")
    start = time.monotonic()
    assert fleece_b("update", str(reference)).code == 0
    duration = time.monotonic() - start
    for number, fraction in enumerate((0.2, 0.45, 0.6, 0.7, 0.8, 0.9, 0.95)):
        service = made(f"killed-{number}")
        process = subprocess.Popen(
            [str(fleece_b.script), "update", str(service)],
            env=fleece_b.environ(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(duration * fraction)
        os.kill(process.pid, signal.SIGKILL)
        process.wait()

        if read_tree(service) != read_tree(reference):
            finished = fleece_b("update", str(service))
            assert finished.code == 0, f"{fraction}: {finished.stderr}"
        assert read_tree(service) == read_tree(reference), fraction
        assert fleece_b("check", str(service)).code == 0
        _no_leftovers(service, fleece_b, killed=True)


def test_force_keeps_the_hand_edited_runtime_beside_the_new_one(
    service: Path, fleece_b: Fleece
) -> None:
    append(service / RUNTIME, "\nPATCHED = True\n")
    commit_all(service, "patch the runtime")
    edited = (service / RUNTIME).read_bytes()

    refused = _verdicts_agree(fleece_b, service)
    forced = fleece_b("update", str(service), "--force")

    assert refused.code == 2 and "-PATCHED = True" in refused.stdout
    assert forced.code == 0, forced.stderr
    assert (service / f"{RUNTIME}.orig").read_bytes() == edited
    assert f"saved your edited {RUNTIME} as {RUNTIME}.orig" in forced.stdout


def test_a_readme_showing_conflict_markers_blocks_nothing(
    service: Path, fleece_b: Fleece
) -> None:
    example = "\n```\n<<<<<<< HEAD\nours\n=======\ntheirs\n>>>>>>> branch\n```\n"
    edit(service / "README.md", "\n", "\n" + example)
    commit_all(service, "document conflicts")

    update = _verdicts_agree(fleece_b, service)

    assert update.code == 0, update.stderr
    commit_all(service, "fleece update")
    assert fleece_b("check", str(service)).code == 0


def test_a_folder_in_the_way_stops_the_update_before_any_write(
    service: Path, fleece_b: Fleece
) -> None:
    (service / "CHANGELOG.md").mkdir()
    (service / "CHANGELOG.md/2024.md").write_text("# 2024\n")
    commit_all(service, "changelog folder")
    before = read_tree(service)

    update = _verdicts_agree(fleece_b, service)

    assert update.code == 2
    assert update.stderr.startswith(
        "Error: CHANGELOG.md: a folder is where the template"
    )
    assert read_tree(service) == before


def test_answers_edited_by_hand_are_named_and_their_comments_noted(
    service: Path, fleece_b: Fleece
) -> None:
    answers = service / ".fleece/answers.yml"
    edit(answers, "architecture: x86_64", "architecture: arm32")
    commit_all(service, "arm32")

    refused = _verdicts_agree(fleece_b, service)
    edit(answers, "architecture: arm32", "architecture: arm64  # Graviton")
    commit_all(service, "arm64")
    update = fleece_b("update", str(service))

    assert refused.code == 2
    assert refused.stderr.startswith(
        "Error: .fleece/answers.yml: architecture=arm32: not offered"
    )
    assert update.code == 0, update.stderr
    assert "your comments in it (1 line, e.g. 'architecture: arm64  # Graviton')" in (
        update.stdout
    )
