"""fleece_runtime as a file: what importing it costs and what it asks of a service."""

import subprocess
import sys

import pytest

from runtime_stub import fleece_runtime as runtime
from tests.runtime.conftest import RUNTIME_DIR

OPTIONAL = (
    "boto3",
    "botocore",
    "requests",
    "urllib3",
    "aws_xray_sdk",
    "connexion",
    "starlette",
    "flask",
)


def test_importing_it_imports_only_the_standard_library() -> None:
    script = (
        "import sys; before = set(sys.modules); import fleece_runtime; "
        "print('\\n'.join(sorted(set(sys.modules) - before)))"
    )
    out = subprocess.run(
        [sys.executable, "-S", "-c", script],
        cwd=RUNTIME_DIR,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()

    assert "fleece_runtime" in out
    for name in out:
        assert name.split(".")[0] in sys.stdlib_module_names | {"fleece_runtime"}, name
    assert not {name.split(".")[0] for name in out} & {*OPTIONAL, "typing"}


def test_a_missing_boto3_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "botocore.config", None)

    with pytest.raises(ImportError, match=r"needs the package 'boto3'"):
        runtime.boto3.client("s3")


def test_a_missing_requests_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "urllib3.util.retry", None)

    with pytest.raises(ImportError, match=r"needs the package 'requests'"):
        runtime.requests.get("http://127.0.0.1:9/")


NAMESPACES = (
    "log",
    "xray",
    "profiling",
    "httperror",
    "connexion",
    "handlers",
    "authpolicy",
    "testing",
    "boto3",
    "requests",
    "raxauth",
)


def test_public_names_are_exported_and_documented() -> None:
    for name in runtime.__all__:
        value = getattr(runtime, name)
        assert value.__doc__, name
    for namespace_name in NAMESPACES:
        namespace = getattr(runtime, namespace_name)
        for name in dir(type(namespace)):
            if not name.startswith("_"):
                assert getattr(namespace, name).__doc__, f"{namespace_name}.{name}"


def test_the_docstring_lists_every_public_name_in_the_order_of_all() -> None:
    listed = [
        word.strip(",")
        for line in (runtime.__doc__ or "").split("Contents")[1].splitlines()
        if line.startswith("    ")
        for word in line.split()
    ]

    assert listed == runtime.__all__


def test_the_names_of_fleece_1x_are_in_their_namespaces() -> None:
    names = {
        "log": [
            "setup_root_logger",
            "get_logger",
            "getLogger",
            "RetryHandler",
            "inject_request_ids_into_environment",
            "logme",
            "initial_trace_and_context_binds",
        ],
        "boto3": ["client", "resource", "set_default_timeout"],
        "requests": [
            "request",
            "get",
            "options",
            "head",
            "post",
            "put",
            "patch",
            "delete",
            "Session",
            "set_default_timeout",
            "set_default_retries",
        ],
        "xray": [
            "trace_xray_subsegment",
            "monkey_patch_botocore_for_xray",
            "monkey_patch_requests_for_xray",
            "get_trace_id",
            "get_xray_daemon",
            "send_segment_document_to_xray_daemon",
            "send_subsegment_to_xray_daemon",
        ],
        "profiling": ["profile_handler"],
        "raxauth": ["authenticate", "validate"],
        "httperror": ["HTTPError"],
        "connexion": ["call_api", "call_proxy_api", "get_connexion_app"],
        "authpolicy": ["AuthPolicy"],
        "testing": ["LambdaContext"],
    }
    for namespace, functions in names.items():
        for name in functions:
            assert callable(getattr(getattr(runtime, namespace), name)), name
    assert runtime.log.get_logger is runtime.log.getLogger is runtime.get_logger
    assert runtime.boto3.set_default_timeout is not runtime.requests.set_default_timeout
    for name in ("trace_xray_subsegment", "get_trace_id"):
        assert getattr(runtime.xray, name) is getattr(runtime, name)
    wsgi = runtime.handlers.wsgi
    assert wsgi.wsgi_handler is runtime.wsgi_handler
    assert wsgi.build_wsgi_environ_from_event is runtime.build_wsgi_environ_from_event
    assert runtime.handlers.connexion.call_api is runtime.connexion.call_api


@pytest.mark.parametrize("target", ["py311", "py312", "py313", "py314"])
def test_a_service_ruff_accepts_it(target: str) -> None:
    # The rules of a generated service: ruff's defaults plus I, UP and B.
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "ruff",
            "check",
            "--isolated",
            "--no-cache",
            "--target-version",
            target,
            "--extend-select",
            "I,UP,B",
            str(RUNTIME_DIR / "fleece_runtime.py"),
        ],
        capture_output=True,
        text=True,
    )

    assert result.returncode == 0, result.stdout
