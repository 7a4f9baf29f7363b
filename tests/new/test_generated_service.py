"""Every variant of a generated service, as a user gets it, passes its own checks.

`fleece new`, from fleece's wheel installed in a fresh environment, makes each
variant: the three API styles on python3.12/x86_64 and on python3.13/arm64,
traced (the default), and the three again without tracing. That environment
then runs each service's CI workflow, whose steps are the commands its README
lists: ``pip install -e '.[dev]'`` (offline, from the host wheelhouse and the
wheel), pytest, ruff, black, mypy --strict, cfn-lint and ``fleece check``. The
services share the environment, so the dev tools are installed once; each
service is made, installed and checked once, and the tests below read the
results (module-scoped fixtures).

Beyond its CI, each service: runs its tests on its own runtime's Python
without a warning, logs debug lines under ``LOG_LEVEL=DEBUG``, sends
subsegments to an X-Ray daemon (a UDP socket on 127.0.0.1) when traced and
nothing when not, answers CORS as its HTTP API does, and passes
``sam validate --lint`` and GitHub's workflow schema.
"""

import json
import os
import shlex
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import jinja2
import pytest

from fleece.service.render import load_template
from tests.new.service_ci import WORKFLOW, readme_checks, workflow_commands
from tests.new.test_workflow import check_workflow
from tests.runtime.runtime_servers import Daemon, HttpServer
from tests.venvs import (
    create_environment,
    offline_environ,
    pip_install,
    runtime_python,
    runtime_wheelhouse,
)

pytestmark = pytest.mark.slow

TRACE_ID = "1-5759e988-bd862e3fe1be46a994272793"
LAMBDA_SEGMENT_ID = "53995c3f42cd8ad8"


@dataclass(frozen=True)
class Variant:
    """The answers of one generated service."""

    name: str
    api_style: str
    python: str  # "3.12"
    architecture: str
    tracing: bool = True
    description: str = ""

    def data(self) -> list[str]:
        """The ``--data`` arguments of `fleece new`."""
        answers = {
            "api_style": self.api_style,
            "python_runtime": f"python{self.python}",
            "architecture": self.architecture,
            "tracing": str(self.tracing).lower(),
        }
        if self.description:
            answers["description"] = self.description
        return [
            arg
            for key, value in answers.items()
            for arg in ("--data", f"{key}={value}")
        ]

    @property
    def package(self) -> str:
        return self.name.lower().replace("-", "_")


TRACED = [
    Variant("none-312", "none", "3.12", "x86_64"),
    Variant("router-312", "router", "3.12", "x86_64"),
    Variant("openapi-312", "openapi", "3.12", "x86_64"),
    Variant("none-313", "none", "3.13", "arm64"),
    Variant("router-313", "router", "3.13", "arm64"),
    Variant(
        "Odd_Name-2",
        "openapi",
        "3.13",
        "arm64",
        description="A deliberately long description that goes on and on, "
        'with "quotes", a backslash \\ and unicode: naïve café ☕ — to test escaping.',
    ),
]
UNTRACED = [
    Variant(f"{style}-untraced", style, "3.12", "x86_64", tracing=False)
    for style in ("none", "router", "openapi")
]
APIS = [variant for variant in TRACED + UNTRACED if variant.api_style != "none"]


@dataclass
class Service:
    """A generated service, installed in the shared environment, and its CI's results."""

    variant: Variant
    path: Path
    python: Path  # of the shared environment
    checks: dict[str, subprocess.CompletedProcess[str]] = field(default_factory=dict)

    def run(self, *command: str, **env: str) -> subprocess.CompletedProcess[str]:
        """``command`` in the service's folder, the environment's scripts first on PATH."""
        path = f"{self.python.parent}{os.pathsep}{os.environ['PATH']}"
        return subprocess.run(
            command,
            cwd=self.path,
            capture_output=True,
            text=True,
            env=offline_environ(PATH=path, **env),
            timeout=600,
        )

    def script(self, code: str, **env: str) -> subprocess.CompletedProcess[str]:
        """Python ``code`` run with the service's ``src`` first, as Lambda runs it."""
        return self.run(str(self.python), "-c", code, PYTHONPATH="src", **env)


@pytest.fixture(scope="module")
def toolbox(tmp_path_factory: pytest.TempPathFactory, fleece_wheel: Path) -> Path:
    """A fresh environment with fleece installed from its wheel, as a user has it."""
    python = create_environment(tmp_path_factory.mktemp("toolbox") / "venv")
    installed = pip_install(python, str(fleece_wheel))
    assert installed.returncode == 0, installed.stdout + installed.stderr
    return python


@pytest.fixture(scope="module")
def services() -> dict[Variant, Service]:
    """Each variant's service, made and checked at its first use."""
    return {}


def _service(
    variant: Variant,
    made: dict[Variant, Service],
    toolbox: Path,
    folder: Path,
    fleece_wheel: Path,
) -> Service:
    if variant in made:
        return made[variant]
    fleece = str(toolbox.parent / "fleece")
    service = Service(variant, folder / variant.name, toolbox)
    git = {"GIT_AUTHOR_NAME": "Test", "GIT_AUTHOR_EMAIL": "test@example.com"}
    git.update(GIT_COMMITTER_NAME="Test", GIT_COMMITTER_EMAIL="test@example.com")
    created = subprocess.run(
        [fleece, "new", variant.name, "--defaults", *variant.data()],
        cwd=folder,
        capture_output=True,
        text=True,
        env=offline_environ(**git),
        timeout=300,
    )
    assert created.returncode == 0, created.stderr
    install, *checks = workflow_commands((service.path / WORKFLOW).read_text())
    assert install == "pip install -e '.[dev]'"
    installed = pip_install(
        toolbox,
        *shlex.split(install)[2:],
        cwd=service.path,
        find_links=(fleece_wheel.parent,),
    )
    assert installed.returncode == 0, installed.stdout + installed.stderr
    service.checks = {command: service.run(*shlex.split(command)) for command in checks}
    made[variant] = service
    return service


def _fixture_service(request: pytest.FixtureRequest) -> Service:
    return _service(
        request.param,
        request.getfixturevalue("services"),
        request.getfixturevalue("toolbox"),
        request.getfixturevalue("tmp_path_factory").getbasetemp(),
        request.getfixturevalue("fleece_wheel"),
    )


@pytest.fixture(scope="module", params=TRACED + UNTRACED, ids=lambda v: v.name)
def service(request: pytest.FixtureRequest) -> Service:
    return _fixture_service(request)


@pytest.fixture(scope="module", params=TRACED, ids=lambda v: v.name)
def traced(request: pytest.FixtureRequest) -> Service:
    return _fixture_service(request)


@pytest.fixture(scope="module", params=UNTRACED, ids=lambda v: v.name)
def untraced(request: pytest.FixtureRequest) -> Service:
    return _fixture_service(request)


@pytest.fixture(scope="module", params=APIS, ids=lambda v: v.name)
def api(request: pytest.FixtureRequest) -> Service:
    return _fixture_service(request)


@pytest.fixture(scope="module")
def runtime_environments() -> dict[str, Path]:
    """One environment per runtime's Python, made at its first use."""
    return {}


@pytest.fixture
def daemon() -> Iterator[Daemon]:
    """A UDP socket on 127.0.0.1 standing in for the X-Ray daemon."""
    listener = Daemon()
    try:
        yield listener
    finally:
        listener.sock.close()


# --- its CI -------------------------------------------------------------------


def test_its_ci_checks_pass(service: Service) -> None:
    for command, result in service.checks.items():
        assert result.returncode == 0, f"{command}:\n{result.stdout}\n{result.stderr}"
    summary = service.checks["pytest"].stdout.strip().splitlines()[-1]
    assert int(summary.split(" passed")[0].split()[-1]) >= 8


def test_its_tests_print_no_warning(service: Service) -> None:
    output = service.checks["pytest"].stdout

    assert "warning" not in output.lower(), output


def test_its_tests_pass_without_a_warning_on_its_runtimes_python(
    service: Service, runtime_environments: dict[str, Path], tmp_path: Path
) -> None:
    python = service.variant.python
    if python not in runtime_environments:
        folder = tmp_path.parent / f"runtime-{python}"
        runtime_environments[python] = create_environment(
            folder, runtime_python(python)
        )
    environment = runtime_environments[python]
    installed = pip_install(
        environment,
        "pytest",
        "-r",
        "src/requirements.txt",
        cwd=service.path,
        wheelhouse=runtime_wheelhouse(python),
    )
    assert installed.returncode == 0, installed.stdout + installed.stderr

    tested = service.run(str(environment), "-m", "pytest", "-p", "no:cacheprovider")

    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert f"Python {python}" in tested.stdout
    assert "warning" not in tested.stdout.lower(), tested.stdout


def test_the_workflow_runs_the_commands_the_readme_lists(service: Service) -> None:
    workflow = (service.path / WORKFLOW).read_text()

    assert workflow_commands(workflow) == readme_checks(
        (service.path / "README.md").read_text()
    )


def test_the_workflow_is_valid_against_githubs_schema(service: Service) -> None:
    checked = check_workflow(service.path / WORKFLOW)

    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_sam_validate_with_lint_passes(service: Service, sam: Path) -> None:
    validated = service.run(
        str(sam), "validate", "--lint", AWS_DEFAULT_REGION="us-east-1"
    )

    assert validated.returncode == 0, validated.stdout + validated.stderr
    assert "is a valid SAM Template" in validated.stdout


# --- logging ------------------------------------------------------------------

DEBUG_LINE = """
import json, logging
from {package} import handler
handler.logger.debug("probe", where="test")
"""


def test_log_level_debug_shows_debug_lines(service: Service) -> None:
    code = DEBUG_LINE.format(package=service.variant.package)
    logged = service.script(code, LOG_LEVEL="DEBUG", SERVICE_NAME="orders")

    assert logged.returncode == 0, logged.stderr
    lines = [
        json.loads(line)
        for line in (logged.stdout + logged.stderr).splitlines()
        if line.startswith("{")
    ]
    (probe,) = [
        line
        for line in lines
        if line.get("event") == "probe" or line.get("message") == "probe"
    ]
    assert probe["level"] == "DEBUG"
    assert probe["service"] == "orders"


def test_log_level_info_drops_debug_lines(service: Service) -> None:
    code = DEBUG_LINE.format(package=service.variant.package)
    logged = service.script(code, LOG_LEVEL="INFO")

    assert logged.returncode == 0, logged.stderr
    assert "probe" not in logged.stdout + logged.stderr


# --- X-Ray --------------------------------------------------------------------

INVOCATION = """
import json, sys
from {package}.handler import handler
from fleece_runtime import testing

event = testing.http_api_event("GET", "/hello", query={{"name": "Ada"}})
answer = handler(event, testing.LambdaContext())
assert answer["statusCode"] == 200, answer
print("patched before", "botocore.client" in sys.modules, "requests" in sys.modules)

import boto3, requests
boto3.client("sts").get_caller_identity()
requests.get(sys.argv[1], timeout=5)
from botocore.client import BaseClient
print("patched", hasattr(BaseClient._make_api_call, "_fleece_xray"), hasattr(requests.Session.request, "_fleece_xray"))
"""


def _invoke(
    service: Service, daemon: Daemon, url: str, aws: str
) -> subprocess.CompletedProcess[str]:
    code = INVOCATION.format(package=service.variant.package)
    return service.run(
        str(service.python),
        "-c",
        code,
        url,
        PYTHONPATH="src",
        AWS_XRAY_DAEMON_ADDRESS=daemon.address,
        _X_AMZN_TRACE_ID=f"Root={TRACE_ID};Parent={LAMBDA_SEGMENT_ID};Sampled=1",
        AWS_ENDPOINT_URL=aws,
    )


def test_a_traced_invocation_sends_its_subsegments(
    traced: Service, daemon: Daemon, http_server: HttpServer, aws: str
) -> None:
    invoked = _invoke(traced, daemon, http_server.url, aws)

    assert invoked.returncode == 0, invoked.stdout + invoked.stderr
    assert "patched True True" in invoked.stdout
    documents = daemon.completed()
    names = {document["name"]: document for document in documents}
    handler = names["handler"]
    assert handler["parent_id"] == LAMBDA_SEGMENT_ID
    if traced.variant.api_style != "none":  # the route's function, under the handler
        assert names["hello"]["parent_id"] == handler["id"]
    assert names["sts"]["namespace"] == "aws"
    assert names["127.0.0.1"]["namespace"] == "remote"
    assert {document["trace_id"] for document in documents} == {TRACE_ID}


def test_an_untraced_service_patches_nothing_and_sends_nothing(
    untraced: Service, daemon: Daemon, http_server: HttpServer, aws: str
) -> None:
    invoked = _invoke(untraced, daemon, http_server.url, aws)

    assert invoked.returncode == 0, invoked.stdout + invoked.stderr
    assert "patched False False" in invoked.stdout
    assert daemon.datagrams() == []


# --- CORS ---------------------------------------------------------------------

CORS_POLICY = """
import json
from {package}.handler import cors_policy
policy = cors_policy()
print("policy", json.dumps({{"origins": sorted(policy.allow_origins), "headers": list(policy.allow_headers), "max_age": policy.max_age}}))
"""


def test_the_handler_answers_cors_as_the_http_api_does(api: Service) -> None:
    settings = (
        jinja2.Environment(
            loader=jinja2.FileSystemLoader(load_template("service").path)
        )
        .get_template("cors.jinja")
        .module
    )
    code = CORS_POLICY.format(package=api.variant.package)

    default = api.script(code)
    staged = api.script(
        code, CORS_ALLOW_ORIGINS="https://app.example.com,http://localhost:3000"
    )

    assert default.returncode == 0 and staged.returncode == 0, (
        default.stderr + staged.stderr
    )
    assert _policy(default.stdout) == {
        "origins": [settings.allow_origins],  # type: ignore[attr-defined]
        "headers": settings.allow_headers,  # type: ignore[attr-defined]
        "max_age": settings.max_age,  # type: ignore[attr-defined]
    }
    assert _policy(staged.stdout)["origins"] == [
        "http://localhost:3000",
        "https://app.example.com",
    ]


def _policy(stdout: str) -> dict[str, object]:
    """The policy the script printed, whatever the app logged before it."""
    (line,) = [line for line in stdout.splitlines() if line.startswith("policy ")]
    policy: dict[str, object] = json.loads(line.removeprefix("policy "))
    return policy


# --- names --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "api_style"),
    [("requests", "none"), ("starlette", "router"), ("connexion", "openapi")],
)
def test_the_installed_fleece_refuses_names_that_shadow_what_a_service_imports(
    toolbox: Path, tmp_path: Path, name: str, api_style: str
) -> None:
    refused = subprocess.run(
        [
            str(toolbox.parent / "fleece"),
            "new",
            name,
            "--defaults",
            "--data",
            f"api_style={api_style}",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=offline_environ(),
        timeout=120,
    )

    assert refused.returncode == 2
    assert len(refused.stderr.strip().splitlines()) == 1
    assert name in refused.stderr
    assert list(tmp_path.iterdir()) == []
