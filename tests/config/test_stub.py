"""runtime_stub/fleece_config.py: the API a handler uses, what it costs at import,
and how its first load fails when KMS does not answer."""

import importlib.util
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from fleece.resources import runtime_stub_dir
from tests.config.conftest import Keys, SilentServer, run


@pytest.fixture
def fleece_config() -> Iterator[ModuleType]:
    """A fresh copy of the stub module (empty payload)."""
    path = runtime_stub_dir() / "fleece_config.py"
    spec = importlib.util.spec_from_file_location("fleece_config", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop("fleece_config", None)


def test_the_stub_holds_an_empty_configuration_until_a_stage_is_rendered(
    fleece_config: ModuleType,
) -> None:
    assert fleece_config.load_config() == {}
    assert fleece_config.STAGE == ""


def test_set_config_feeds_load_config_and_config(fleece_config: ModuleType) -> None:
    fleece_config.set_config({"table": "orders"})
    assert fleece_config.load_config() == {"table": "orders"}
    assert fleece_config.CONFIG == {"table": "orders"}
    fleece_config.set_config(None)
    assert fleece_config.load_config() == {}


def test_config_is_not_an_attribute_until_it_is_asked_for(
    fleece_config: ModuleType,
) -> None:
    assert "CONFIG" not in vars(fleece_config)
    with pytest.raises(AttributeError, match="no attribute 'OTHER'"):
        fleece_config.OTHER  # noqa: B018


def test_a_payload_with_a_wrong_digest_is_refused(fleece_config: ModuleType) -> None:
    with pytest.raises(fleece_config.ConfigError, match="fails its digest"):
        fleece_config.open_payload(b"\0" * 32, "0" * 64)


BOOTSTRAP = "import importlib, json, logging, os, sys, time, traceback"


def test_importing_the_module_loads_nothing_beyond_lambdas_bootstrap() -> None:
    # What Lambda's Python runtime has imported before the handler module.
    code = (
        f"{BOOTSTRAP}\n"
        f"sys.path.insert(0, {str(runtime_stub_dir())!r})\n"
        "before = set(sys.modules)\n"
        "import fleece_config\n"
        "print(json.dumps(sorted(set(sys.modules) - before)))\n"
    )
    result = subprocess.run(
        [sys.executable, "-I", "-c", code],
        capture_output=True,
        text=True,
        check=True,
    )
    assert set(json.loads(result.stdout)) <= {"fleece_config", "__future__"}


@pytest.fixture
def module(imported: Path) -> Path:
    """A service folder holding fleece_config.py rendered for stage prod."""
    result = run("config", "render", "prod", "--python", "--output", "fleece_config.py")
    assert result.exit_code == 0, result.stderr
    return imported


LOAD = """\
import json, sys, time, fleece_config

class Context:
    def get_remaining_time_in_millis(self):
        return REMAINING

start = time.monotonic()
try:
    fleece_config.load_config(ARGUMENTS)
except fleece_config.ConfigError as error:
    outcome = str(error)
print(json.dumps({"took": time.monotonic() - start, "error": outcome}))
"""


def load_against(
    endpoint: str,
    folder: Path,
    arguments: str,
    remaining: int = 0,
    code: str = LOAD,
    **env: str,
) -> dict[str, Any]:
    """Call load_config(ARGUMENTS) in a fresh process whose KMS is ``endpoint``."""
    code = code.replace("ARGUMENTS", arguments).replace("REMAINING", str(remaining))
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=folder,
        env={**os.environ, "AWS_ENDPOINT_URL": endpoint, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    loaded: dict[str, Any] = json.loads(result.stdout)
    return loaded


def test_a_kms_that_never_answers_fails_within_the_timeout(
    module: Path, keys: Keys
) -> None:
    with SilentServer() as kms:
        outcome = load_against(kms.url, module, "timeout=1.5")
        assert kms.connections >= 1
    assert outcome["error"] == (
        "fleece_config: cannot decrypt the configuration of stage 'prod' with KMS "
        f"key {keys.prod['Arn']}: KMS did not answer within 1.5 s "
        "(FLEECE_CONFIG_TIMEOUT or load_config(timeout=...) give it longer)"
    )
    assert outcome["took"] < 1.5 + 1.0  # the deadline, give or take a scheduler


def test_the_deadline_falls_before_the_end_of_the_invocation(module: Path) -> None:
    with SilentServer() as kms:
        outcome = load_against(kms.url, module, "Context()", remaining=1200)
    assert "KMS did not answer within 0.7 s" in outcome["error"]
    assert outcome["took"] < 1.2  # the function's own timeout would come here


def test_the_generated_code_s_call_is_bounded_by_the_running_invocation(
    module: Path,
) -> None:
    # The services' code calls load_config(current_lambda_context()) far from
    # the handler; the decorated handler (or Router.resolve) made it current.
    (module / "fleece_runtime.py").write_bytes(
        (runtime_stub_dir() / "fleece_runtime.py").read_bytes()
    )
    arguments = "fleece_runtime.current_lambda_context()"
    code = LOAD.replace(
        "start = time.monotonic()",
        "import fleece_runtime\n"
        "fleece_runtime.lambda_invocation(Context()).__enter__()\n"
        "start = time.monotonic()",
    )
    with SilentServer() as kms:
        outcome = load_against(kms.url, module, arguments, remaining=1200, code=code)
    assert "KMS did not answer within 0.7 s" in outcome["error"]
    assert outcome["took"] < 1.2


def test_the_service_template_gives_load_config_the_invocation() -> None:
    template = Path(__file__).parents[2] / "templates" / "service" / "project"
    calls = [
        line.strip()
        for path in template.rglob("*.jinja")
        for line in path.read_text().splitlines()
        if "load_config(" in line and "def load_config" not in line
    ]
    code_calls = [call for call in calls if call.startswith("greeting =")]
    assert code_calls and all(
        "load_config(current_lambda_context())" in call for call in code_calls
    ), code_calls


def test_the_default_deadline_comes_from_the_environment(module: Path) -> None:
    with SilentServer() as kms:
        outcome = load_against(kms.url, module, "", FLEECE_CONFIG_TIMEOUT="0.8")
    assert "KMS did not answer within 0.8 s" in outcome["error"]


def test_a_failed_first_load_is_not_cached(module: Path, aws: str) -> None:
    code = (
        "import os, fleece_config\n"
        "try:\n"
        "    fleece_config.load_config(timeout=0.5)\n"
        "except fleece_config.ConfigError:\n"
        f"    os.environ['AWS_ENDPOINT_URL'] = {aws!r}\n"
        "print(fleece_config.load_config()['foo'])\n"
    )
    with SilentServer() as kms:
        result = subprocess.run(
            [sys.executable, "-c", code],
            cwd=module,
            env={**os.environ, "AWS_ENDPOINT_URL": kms.url},
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "bar\n"
