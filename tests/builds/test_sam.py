"""The AWS SAM workflow of a generated service, with the real SAM CLI.

`sam build` builds the function through the service's Makefile with
`fleece build --output-dir`, so `.aws-sam/build/Function` holds exactly the
files of `fleece build`'s zip; `sam validate --lint` passes; and `fleece
update` brings the SAM files to a service made before them.

The SAM CLI pins old versions of click and boto3, so it lives in an
environment of its own, installed offline from ``locks/sam.txt``'s wheels
(``tests/wheelhouse.py`` fetches them). SAM runs offline: telemetry off, and
every HTTP request but those to 127.0.0.1 (the package index) goes to a closed
port.
"""

import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import boto3
import pytest
import yaml

from fleece.build.bytecode import Interpreter
from fleece.service.base import pack_base, unpack_base
from fleece.service.check import check_service
from fleece.service.layout import BASE_ARCHIVE
from tests.builds.build_support import (
    Fleece,
    IndexServer,
    MakeService,
    contents,
    zip_of,
)
from tests.venvs import offline_environ
from tests.wheelhouse import is_complete, openapi_folder, openapi_wanted

pytestmark = pytest.mark.slow

SAM_FILES = ("Makefile", "samconfig.toml")


@pytest.fixture
def run_sam(
    sam: Path, tmp_path: Path
) -> Callable[..., subprocess.CompletedProcess[str]]:
    """``run_sam(service, *args)``: the SAM CLI in ``service``, offline."""
    closed = "http://127.0.0.1:9"  # nothing listens on the discard port

    def run(service: Path, *args: str) -> subprocess.CompletedProcess[str]:
        env = offline_environ(
            SAM_CLI_TELEMETRY="0",
            __SAM_CLI_APP_DIR=str(tmp_path / "sam-home"),
            HTTP_PROXY=closed,
            HTTPS_PROXY=closed,
            NO_PROXY="127.0.0.1,localhost",
            # The Makefile runs $(FLEECE): this checkout's fleece.
            FLEECE=f"{sys.executable} -m fleece",
            FLEECE_CACHE_DIR=os.environ["FLEECE_CACHE_DIR"],
            PIP_CONFIG_FILE=os.devnull,
            PIP_INDEX_URL=os.environ["PIP_INDEX_URL"],
        )
        return subprocess.run(
            [str(sam), *args],
            cwd=service,
            capture_output=True,
            text=True,
            env=env,
            timeout=600,
        )

    return run


def tree(folder: Path) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.mark.parametrize("api_style", ["none", "router", "openapi"])
def test_sam_build_builds_the_files_of_fleece_build(
    serve_index: Callable[[Path], IndexServer],
    wheelhouse: Path,
    run_sam: Callable[..., subprocess.CompletedProcess[str]],
    fleece: Fleece,
    python312: Interpreter,
    make_service: MakeService,
    api_style: str,
) -> None:
    if not is_complete(openapi_folder(), openapi_wanted()):
        pytest.fail(f"run `python tests/wheelhouse.py`: {openapi_folder()} is missing")
    serve_index(openapi_folder() if api_style == "openapi" else wheelhouse)
    service = make_service("", api_style=api_style, git=True)

    built = run_sam(service, "build")

    assert built.returncode == 0, built.stdout + built.stderr
    assert "Build Succeeded" in built.stdout
    artifacts = service / ".aws-sam" / "build" / "Function"
    template = yaml.safe_load((artifacts.parent / "template.yaml").read_text())
    assert template["Resources"]["Function"]["Properties"]["CodeUri"] == "Function"
    assert fleece("build", str(service))[0] == 0
    assert tree(artifacts) == contents(zip_of(service))
    assert "demo/__pycache__/handler.cpython-312.pyc" in tree(artifacts)
    if api_style == "openapi":
        assert "connexion/__init__.py" in tree(artifacts)


def test_sam_package_uploads_the_files_of_fleece_build(
    aws: str,
    serve_index: Callable[[Path], IndexServer],
    wheelhouse: Path,
    run_sam: Callable[..., subprocess.CompletedProcess[str]],
    fleece: Fleece,
    make_service: MakeService,
    tmp_path: Path,
) -> None:
    # What `sam deploy` uploads, to moto's S3 over HTTP.
    serve_index(wheelhouse)
    service = make_service("", git=True)
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket="artifacts")
    assert run_sam(service, "build").returncode == 0

    packaged = run_sam(
        service,
        "package",
        "--s3-bucket",
        "artifacts",
        "--output-template-file",
        "packaged.yaml",
        "--region",
        "us-east-1",
    )

    assert packaged.returncode == 0, packaged.stdout + packaged.stderr
    uri = re.search(
        r"CodeUri: s3://artifacts/(\S+)", (service / "packaged.yaml").read_text()
    )
    assert uri is not None
    uploaded = tmp_path / "uploaded.zip"
    uploaded.write_bytes(
        s3.get_object(Bucket="artifacts", Key=uri.group(1))["Body"].read()
    )
    assert fleece("build", str(service))[0] == 0
    assert contents(uploaded) == contents(zip_of(service))


@pytest.mark.parametrize("api_style", ["none", "router", "openapi"])
def test_sam_validate_with_lint_passes(
    serve_index: Callable[[Path], IndexServer],
    wheelhouse: Path,
    run_sam: Callable[..., subprocess.CompletedProcess[str]],
    make_service: MakeService,
    api_style: str,
) -> None:
    serve_index(wheelhouse)
    service = make_service("", api_style=api_style, git=True)

    validated = run_sam(service, "validate", "--lint")

    assert validated.returncode == 0, validated.stdout + validated.stderr
    assert "is a valid SAM Template" in validated.stdout


def test_sam_build_fails_when_fleece_build_fails(
    serve_index: Callable[[Path], IndexServer],
    wheelhouse: Path,
    run_sam: Callable[..., subprocess.CompletedProcess[str]],
    make_service: MakeService,
) -> None:
    serve_index(wheelhouse)
    service = make_service("", git=True)
    (service / "src" / "demo" / "handler.py").unlink()

    built = run_sam(service, "build")

    assert built.returncode != 0
    assert "the build holds no demo/handler.py" in built.stdout + built.stderr
    assert "Build Succeeded" not in built.stdout


def test_make_without_sam_builds_the_zip(
    serve_index: Callable[[Path], IndexServer],
    wheelhouse: Path,
    make_service: MakeService,
) -> None:
    serve_index(wheelhouse)
    service = make_service("", git=True)
    environ = offline_environ(FLEECE=f"{sys.executable} -m fleece")
    environ.update(FLEECE_CACHE_DIR=os.environ["FLEECE_CACHE_DIR"])

    made = subprocess.run(
        ["make"], cwd=service, capture_output=True, text=True, env=environ
    )
    asked = subprocess.run(
        ["make", "build-Function"],
        cwd=service,
        capture_output=True,
        text=True,
        env=environ,
    )

    assert made.returncode == 0, made.stderr
    assert zip_of(service).is_file()
    assert asked.returncode != 0
    assert "ARTIFACTS_DIR is not set: sam build sets it" in asked.stderr


def test_update_brings_the_sam_build_to_a_service_made_before_it(
    make_service: MakeService, fleece: Fleece
) -> None:
    service = make_service("", git=True)
    fresh = tree(service)
    # The service as fleece made it before: no SAM files, the zip as CodeUri,
    # in the working tree and in the pristine base alike.
    archive = service / BASE_ARCHIVE
    base = unpack_base(archive.read_bytes())
    for name in SAM_FILES:
        (service / name).unlink()
        del base[name]
    base["template.yaml"] = _before_sam((service / "template.yaml").read_bytes())
    (service / "template.yaml").write_bytes(base["template.yaml"])
    archive.write_bytes(pack_base(base))
    subprocess.run(["git", "-C", str(service), "add", "-A"], check=True)
    subprocess.run(
        ["git", "-C", str(service), "commit", "-qm", "made by an older fleece"],
        check=True,
        env={**os.environ, "GIT_AUTHOR_NAME": "T", "GIT_AUTHOR_EMAIL": "t@e"}
        | {"GIT_COMMITTER_NAME": "T", "GIT_COMMITTER_EMAIL": "t@e"},
    )

    code, out, err = fleece("update", str(service))

    assert code == 0, out + err
    updated = tree(service)
    for name in (*SAM_FILES, "template.yaml"):
        assert updated[name] == fresh[name], name
    assert not check_service(service).findings


def _before_sam(template: bytes) -> bytes:
    """``template.yaml`` as fleece wrote it before builds went through SAM."""
    lines = template.decode().splitlines(keepends=True)
    start = lines.index("    Metadata:\n")
    end = lines.index("    Properties:\n")
    old = "".join(lines[:start] + lines[end:])
    return old.replace("CodeUri: src/", "CodeUri: dist/lambda_function.zip").encode()
