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

import json
import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3
import jinja2
import pytest
import yaml

from fleece.build.bytecode import Interpreter
from fleece.service.base import pack_base, unpack_base
from fleece.service.check import check_service
from fleece.service.layout import BASE_ARCHIVE
from fleece.service.render import load_template, render
from tests.builds.build_support import (
    Fleece,
    IndexServer,
    MakeService,
    contents,
    zip_of,
)
from tests.venvs import create_environment, offline_environ, pip_install
from tests.wheelhouse import (
    SAM_LOCK,
    is_complete,
    openapi_folder,
    openapi_wanted,
    sam_folder,
    sam_wanted,
)

pytestmark = pytest.mark.slow

SAM_FILES = ("Makefile", "samconfig.toml")


@pytest.fixture(scope="session")
def sam(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The ``sam`` command of an environment of its own, installed offline."""
    if not is_complete(sam_folder(), sam_wanted()):
        pytest.fail(
            f"the SAM tests install from the wheels in {sam_folder()}: run "
            "`python tests/wheelhouse.py` first (it needs PyPI)"
        )
    python = create_environment(tmp_path_factory.mktemp("sam") / "venv")
    installed = pip_install(
        python, "--no-deps", "-r", str(SAM_LOCK), find_links=(sam_folder(),)
    )
    assert installed.returncode == 0, installed.stdout + installed.stderr
    return python.parent / "sam"


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


# What `sam deploy` sends CloudFormation: the template as SAM transforms it.
# The code's location is known once packaged, so it stands for it, as `sam
# validate` does; the managed policies SAM looks up are AWS's, not fleece's.
_TRANSFORM = """
import json, sys
from samcli.yamlhelper import yaml_parse
from samtranslator.translator.transform import transform

class NoManagedPolicies:
    def load(self):
        return {}

template = yaml_parse(sys.stdin.read())
template["Resources"]["Function"]["Properties"]["CodeUri"] = "s3://bucket/key"
parameters = {"AWS::Region": "us-east-1", "AWS::AccountId": "123456789012"}
parameters.update(json.loads(sys.argv[1]))
json.dump(transform(template, parameters, NoManagedPolicies()), sys.stdout)
"""


@pytest.fixture
def deployed(sam: Path) -> Callable[..., dict[str, Any]]:
    """``deployed(parameters={...}, **answers)``: the resources of the template
    rendered with ``answers``, transformed with those parameter values."""

    def transform(
        parameters: dict[str, str] | None = None, **answers: str
    ) -> dict[str, Any]:
        tree = render(load_template("service"), {"project_name": "orders", **answers})
        given = json.dumps(parameters or {})
        result = subprocess.run(
            [str(sam.parent / "python"), "-c", _TRANSFORM, given],
            input=tree["template.yaml"].decode(),
            capture_output=True,
            text=True,
            env=offline_environ(AWS_DEFAULT_REGION="us-east-1"),
            timeout=120,
        )
        assert result.returncode == 0, result.stderr
        resources: dict[str, Any] = json.loads(result.stdout)["Resources"]
        return resources

    return transform


def _shared_settings(tree_text: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """(Globals.Function, the Function's own Properties) of a rendered template."""
    template = yaml.load(tree_text, Loader=_TagsAsStrings)
    return (
        template["Globals"]["Function"],
        template["Resources"]["Function"]["Properties"],
    )


class _TagsAsStrings(yaml.SafeLoader):
    """Reads ``!Ref X`` as the string "!Ref"."""


_TagsAsStrings.add_multi_constructor("!", lambda loader, tag, node: f"!{tag}")


def test_the_function_takes_its_shared_settings_from_globals(
    deployed: Callable[..., dict[str, Any]],
) -> None:
    answers = {"architecture": "arm64", "memory_size": "512", "tracing": "false"}
    tree = render(load_template("service"), {"project_name": "orders", **answers})
    shared, own = _shared_settings(tree["template.yaml"].decode())

    function = deployed(**answers)["Function"]["Properties"]

    assert not set(shared) & set(own)
    assert set(own) == {"Description", "CodeUri", "Handler", "Policies"}
    assert function["Runtime"] == "python3.12"
    assert function["Architectures"] == ["arm64"]
    assert (function["MemorySize"], function["Timeout"]) == (512, 30)
    assert function["TracingConfig"] == {"Mode": "PassThrough"}
    assert function["Environment"]["Variables"] == {
        "STAGE": {"Ref": "Stage"},
        "LOG_LEVEL": {"Ref": "LogLevel"},
        "SERVICE_NAME": "orders",
    }


@pytest.mark.parametrize("api_style", ["none", "router"])
def test_every_resource_that_takes_tags_carries_the_stage_and_service(
    deployed: Callable[..., dict[str, Any]], api_style: str
) -> None:
    resources = deployed(api_style=api_style)

    tagged = {
        name: _tags(resource)
        for name, resource in resources.items()
        if resource["Type"] != "AWS::Lambda::Permission"
    }
    assert len(tagged) == (3 if api_style == "none" else 6)
    for name, tags in tagged.items():
        assert tags["stage"] == {"Ref": "Stage"}, name
        assert tags["service"] == "orders", name


def _tags(resource: dict[str, Any]) -> dict[str, Any]:
    """A resource's tags, as a map, however its type holds them."""
    properties = resource["Properties"]
    if resource["Type"] == "AWS::ApiGatewayV2::Api":
        return {
            tag["name"]: tag["x-amazon-apigateway-tag-value"]
            for tag in properties["Body"]["tags"]
        }
    tags = properties["Tags"]
    if isinstance(tags, list):
        return {tag["Key"]: tag["Value"] for tag in tags}
    return dict(tags)


def test_the_http_api_routes_the_root_and_every_path_to_the_function(
    deployed: Callable[..., dict[str, Any]],
) -> None:
    resources = deployed(api_style="router")

    paths = resources["HttpApi"]["Properties"]["Body"]["paths"]
    assert set(paths) == {"/", "/{proxy+}"}
    for path in paths.values():
        (method,) = path
        assert method == "x-amazon-apigateway-any-method"
    permissions = [
        r["Properties"]["SourceArn"]["Fn::Sub"][0]
        for r in resources.values()
        if r["Type"] == "AWS::Lambda::Permission"
    ]
    assert sorted(arn.rsplit("}", 1)[1] for arn in permissions) == ["/*/", "/*/*"]


def test_the_http_api_logs_each_request_as_json_to_a_kept_log_group(
    deployed: Callable[..., dict[str, Any]],
) -> None:
    resources = deployed(api_style="router")

    stage = resources["HttpApiApiGatewayDefaultStage"]["Properties"]
    settings = stage["AccessLogSettings"]
    assert settings["DestinationArn"] == {
        "Fn::GetAtt": ["HttpApiAccessLogGroup", "Arn"]
    }
    line = json.loads(settings["Format"])
    assert {"requestId", "routeKey", "status", "integrationError"} <= set(line)
    for group in ("HttpApiAccessLogGroup", "FunctionLogGroup"):
        kept = resources[group]["Properties"]["RetentionInDays"]
        assert kept == {"Ref": "LogRetentionInDays"}


def test_the_http_api_throttles_every_route_by_default(
    deployed: Callable[..., dict[str, Any]],
) -> None:
    resources = deployed(api_style="openapi")

    stage = resources["HttpApiApiGatewayDefaultStage"]["Properties"]
    assert stage["DefaultRouteSettings"] == {
        "ThrottlingRateLimit": {"Ref": "ApiThrottlingRateLimit"},
        "ThrottlingBurstLimit": {"Ref": "ApiThrottlingBurstLimit"},
    }


def test_the_http_api_answers_cors_with_the_templates_one_setting(
    deployed: Callable[..., dict[str, Any]],
) -> None:
    settings = (
        jinja2.Environment(
            loader=jinja2.FileSystemLoader(load_template("service").path)
        )
        .get_template("cors.jinja")
        .module
    )
    origins = "https://app.example.com,http://localhost:3000"

    resources = deployed({"CorsAllowOrigins": origins}, api_style="router")

    cors = resources["HttpApi"]["Properties"]["Body"]["x-amazon-apigateway-cors"]
    # CloudFormation resolves it: no CORS at all when the origins are empty,
    # else the list of origins API Gateway reads.
    assert cors == {
        "Fn::If": [
            "HasCorsOrigins",
            {
                "allowOrigins": {"Fn::Split": [",", origins]},
                "allowMethods": settings.allow_methods,  # type: ignore[attr-defined]
                "allowHeaders": settings.allow_headers,  # type: ignore[attr-defined]
                "maxAge": settings.max_age,  # type: ignore[attr-defined]
            },
            {"Ref": "AWS::NoValue"},
        ]
    }


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
