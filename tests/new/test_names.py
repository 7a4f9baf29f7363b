"""Names a service cannot take: the modules it imports, the distributions it installs.

The bundled template lists what its services install (``_fleece_installs``
in copier.yml); one test here derives the same from the requirements the
template renders, the imports of ``fleece_runtime.py`` and the metadata of
the distributions installed in this environment (fleece's dev extra holds
them all), so the list cannot fall behind a new dependency.
"""

import ast
import importlib.metadata
import subprocess
import sys
import tomllib
from collections.abc import Callable
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from fleece.errors import BadInput
from fleece.resources import runtime_stub_dir
from fleece.service.render import InvalidAnswer, load_template, render

RunFleece = Callable[..., subprocess.CompletedProcess[str]]

# Lambda runs every Python function through its runtime interface client.
LAMBDA_RUNTIME_CLIENT = "awslambdaric"
API_STYLES = ("none", "router", "openapi")


def _refusal(**answers: str) -> str:
    """The one line that rendering the bundled template with ``answers`` refuses with."""
    with pytest.raises(InvalidAnswer) as refused:
        render(load_template("service"), {"project_name": "demo", **answers})
    return str(refused.value)


@pytest.mark.parametrize(
    ("project", "taken_by"),
    [
        ("requests", "requests, used by fleece_runtime.requests"),
        ("connexion", "connexion, used by the openapi style's handler"),
        ("Werkzeug", "werkzeug, which connexion needs"),
        ("urllib3", "urllib3, which boto3 needs (used by fleece_runtime.boto3"),
        ("starlette", "starlette, which connexion needs (used by the openapi"),
        ("boto3", "boto3, used by fleece_runtime.boto3 and Lambda's Python runtime"),
        ("botocore", "botocore, which boto3 needs"),
        ("python_dateutil", "python-dateutil, which boto3 needs"),
        ("fleece", "fleece, used by the service's CI (fleece check)"),
        ("cfn-lint", "cfn-lint, used by the service's checks"),
        ("regex", "regex, which cfn-lint needs (used by the service's checks)"),
    ],
)
def test_a_project_named_like_an_installed_distribution_is_refused(
    project: str, taken_by: str
) -> None:
    message = _refusal(project_name=project, package_name="orders")

    assert message.startswith(
        f"project name {project!r} is taken by the distribution {taken_by}"
    )
    assert message.endswith(
        ", and pip cannot install both: choose another project name"
    )


@pytest.mark.parametrize(
    ("package", "reason"),
    [
        ("requests", "the module requests, used by fleece_runtime.requests"),
        (
            "starlette",
            "the module starlette, which connexion needs (used by the openapi style's handler)",
        ),
        ("yaml", "the module yaml, which connexion needs"),
        ("attr", "the module attr, which connexion needs"),
        ("dateutil", "the module dateutil, which boto3 needs"),
        ("_pytest", "the module _pytest, used by the service's tests"),
        (
            "runtime_client",
            "the module runtime_client, used by Lambda's Python runtime",
        ),
        ("json", "the standard library module"),
        ("annotationlib", "the standard library module"),
        ("fleece_config", "src/fleece_config.py"),
        ("conftest", "tests/conftest.py"),
        ("test_handler", "tests/test_handler.py"),
        ("tests", "the service's tests/ folder"),
    ],
)
def test_a_package_named_like_a_module_in_use_is_refused(
    package: str, reason: str
) -> None:
    message = _refusal(package_name=package)

    assert message.startswith(f"package name {package!r} would shadow {reason}")
    assert message.endswith(": pass --data package_name=NAME with another name")


def test_a_keyword_is_no_package_name() -> None:
    assert _refusal(package_name="match").startswith(
        "package name 'match' is a Python keyword: pass --data package_name="
    )


@pytest.mark.parametrize("style", API_STYLES)
def test_names_in_use_elsewhere_are_accepted(style: str) -> None:
    tree = render(
        load_template("service"),
        {
            "project_name": "orders-service",
            "package_name": "orders",
            "api_style": style,
        },
    )

    assert "src/orders/handler.py" in tree


def test_fleece_new_refuses_a_taken_name_in_one_line_and_writes_nothing(
    workdir: Path, run_fleece: RunFleece
) -> None:
    result = run_fleece(
        "new", "connexion", "--defaults", "--data", "api_style=openapi", cwd=workdir
    )

    assert result.returncode == 2
    assert result.stderr.startswith("Error: project name 'connexion' is taken by")
    assert len(result.stderr.splitlines()) == 1
    assert list(workdir.iterdir()) == []


def test_the_template_lists_everything_its_services_install() -> None:
    listed = {
        _canonical(distribution): set(modules)
        for installed in load_template("service").installs
        for distribution, modules in installed.distributions.items()
    }
    requirements = _template_requirements()
    roots = requirements | _runtime_imports() | {LAMBDA_RUNTIME_CLIENT}
    named = {_canonical(i.requirement) for i in load_template("service").installs}

    assert requirements <= named <= roots, "an entry for each requirement, no other"
    missing = {
        distribution: sorted(modules - listed.get(distribution, set()))
        for distribution, modules in _closure(roots).items()
        if distribution not in listed or not modules <= listed[distribution]
    }
    assert missing == {}, "add these to _fleece_installs in copier.yml"


def test_a_damaged_installs_list_is_named_with_its_file(tmp_path: Path) -> None:
    template = tmp_path / "broken"
    template.mkdir()
    (template / "copier.yml").write_text("_fleece_installs:\n  boto3: [boto3]\n")

    with pytest.raises(BadInput, match=r"broken/copier.yml: _fleece_installs must"):
        load_template(template)


def _template_requirements() -> set[str]:
    """What the services of every API style name: src/requirements.txt, the dev extra."""
    names = set()
    for style in API_STYLES:
        tree = render(
            load_template("service"), {"project_name": "demo", "api_style": style}
        )
        lines = tree["src/requirements.txt"].decode().splitlines()
        pyproject = tomllib.loads(tree["pyproject.toml"].decode())
        lines += pyproject["project"]["optional-dependencies"]["dev"]
        for line in lines:
            if line.strip() and not line.lstrip().startswith("#"):
                names.add(_canonical(Requirement(line).name))
    return names


def _runtime_imports() -> set[str]:
    """The distributions of the modules fleece_runtime.py imports, stdlib aside."""
    source = (runtime_stub_dir() / "fleece_runtime.py").read_text()
    modules = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            modules |= {alias.name.partition(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            modules.add(node.module.partition(".")[0])
    foreign = modules - set(sys.stdlib_module_names) - {"__future__"}
    owners = importlib.metadata.packages_distributions()
    return {_canonical(d) for module in foreign for d in owners[module]}


def _closure(roots: set[str]) -> dict[str, set[str]]:
    """Every distribution that installing ``roots`` installs here -> its modules."""
    modules: dict[str, set[str]] = {}
    for module, owners in importlib.metadata.packages_distributions().items():
        # Not modules one would name a package after: __pycache__, and
        # mypyc's compiled helpers, named by a hash.
        if module.startswith("__") or module.endswith("__mypyc"):
            continue
        if module.isidentifier():
            for owner in owners:
                modules.setdefault(_canonical(owner), set()).add(module)
    found: dict[str, set[str]] = {}
    pending = [Requirement(root) for root in sorted(roots)]
    while pending:
        requirement = pending.pop()
        name = _canonical(requirement.name)
        if name in found:
            continue
        try:
            distribution = importlib.metadata.distribution(name)
        except importlib.metadata.PackageNotFoundError:
            pytest.fail(f"{name} is not installed here: add it to fleece's dev extra")
        found[name] = modules.get(name, set())
        for text in distribution.requires or []:
            needed = Requirement(text)
            extras = ["", *sorted(requirement.extras)]
            if needed.marker is None or any(
                needed.marker.evaluate({"extra": extra}) for extra in extras
            ):
                pending.append(needed)
    return found


def _canonical(name: str) -> str:
    """A distribution name as pip compares them (``Python_Dateutil`` -> ``python-dateutil``)."""
    return str(canonicalize_name(name))
