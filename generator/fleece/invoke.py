"""``fleece invoke``: run a service's handler once, locally, as Lambda would.

The handler runs in the service's own environment (its ``.venv``, else the
active virtual environment), in a child process (``fleece.invoke_child``)
that builds the context Lambda passes: a string request id, the function's
name, memory, ARN, and a remaining time counting down from the template's
timeout. The child gets the environment variables of ``template.yaml``
(``Globals`` included, ``!Ref`` of parameters resolved to their defaults),
Lambda's own (``AWS_LAMBDA_FUNCTION_NAME``...), then those of ``--env``.
The answer is printed as JSON on standard output; the handler's log goes to
standard error.
"""

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from fleece.errors import BadInput, FleeceError
from fleece.service.sam import SamFunction, load_function

__all__ = ["InvokeRequest", "invoke"]

EVENTS_DIR = "events"
# Lambda's init phase may take this long before the timeout starts counting.
INIT_ALLOWANCE = 10
# Placeholder account of the function's ARN: a local invocation has none.
LOCAL_ACCOUNT = "123456789012"


@dataclass(frozen=True)
class InvokeRequest:
    """Every setting of one ``fleece invoke``."""

    service: Path = Path(".")
    event: str | None = None  # a file, "-" for standard input, or a name in events/
    env: tuple[str, ...] = ()  # KEY=VALUE
    function: str | None = None  # the logical id, when the template has several


def invoke(request: InvokeRequest, stdin: IO[str] | None = None) -> int:
    """Invoke the handler once; the exit status (0, or 1 when it failed)."""
    service = request.service.resolve()
    if not service.is_dir():
        raise BadInput(f"{request.service} is not a folder")
    region = (
        os.environ.get("AWS_REGION")
        or os.environ.get("AWS_DEFAULT_REGION")
        or "us-east-1"
    )
    function = load_function(service, request.function, region)
    event = read_event(service, request.event, stdin or sys.stdin)
    overrides = parse_env(request.env)
    python = service_python(service)
    for name in sorted(set(function.unresolved) - set(overrides)):
        print(
            f"fleece invoke: {name} is not set: {function.unresolved[name]}; "
            f"pass --env {name}=VALUE",
            file=sys.stderr,
        )
    context = context_fields(service, function, region)
    task_root = service / "src" if (service / "src").is_dir() else service
    payload = {
        "handler": function.handler,
        "task_root": str(task_root),
        "event": event,
        "timeout": function.timeout,
        "context": context,
    }
    env = child_environment(os.environ, function, context, overrides, task_root, region)
    return _run_child(python, json.dumps(payload), env, function.timeout)


def read_event(service: Path, source: str | None, stdin: IO[str]) -> Any:
    """The event: ``{}`` by default, a JSON file, standard input (``-``), or ``events/NAME.json``."""
    if source is None:
        return {}
    if source == "-":
        text, origin = stdin.read(), "standard input"
    else:
        path = Path(source)
        candidates = [
            path,
            service / EVENTS_DIR / source,
            service / EVENTS_DIR / f"{source}.json",
        ]
        found = next(
            (candidate for candidate in candidates if candidate.is_file()), None
        )
        if found is None:
            names = sorted(p.stem for p in (service / EVENTS_DIR).glob("*.json"))
            raise BadInput(
                f"no event {source!r}: not a file, nor in {EVENTS_DIR}/ "
                f"(its events: {', '.join(names) or 'none'})"
            )
        text, origin = found.read_text(encoding="utf-8"), str(found)
    try:
        return json.loads(text)
    except ValueError as error:
        raise BadInput(f"the event in {origin} is not JSON: {error}") from None


def parse_env(pairs: tuple[str, ...]) -> dict[str, str]:
    """``KEY=VALUE`` arguments as a mapping; ``BadInput`` for any other form."""
    values: dict[str, str] = {}
    for pair in pairs:
        name, equals, value = pair.partition("=")
        if not equals or not name or not name.replace("_", "a").isalnum():
            raise BadInput(
                f"--env takes KEY=VALUE (a variable name, then =), not {pair!r}"
            )
        values[name] = value
    return values


def service_python(service: Path) -> Path:
    """The service's ``.venv`` interpreter, else the active virtual environment's."""
    candidates = [service / ".venv"]
    active = os.environ.get("VIRTUAL_ENV")
    if active:
        candidates.append(Path(active))
    for environment in candidates:
        python = environment / "bin" / "python"
        if python.exists():
            return python
    raise BadInput(
        f"{service} has no .venv and no virtual environment is active: create one "
        f"(python3 -m venv .venv && .venv/bin/pip install -e '.[dev]') or activate yours"
    )


def context_fields(service: Path, function: SamFunction, region: str) -> dict[str, str]:
    """The attributes of the invocation's context (see ``invoke_child.LambdaContext``)."""
    import time

    name = function.function_name or _project_name(service)
    stream_day = time.strftime("%Y/%m/%d", time.gmtime())
    return {
        "aws_request_id": str(uuid.uuid4()),
        "function_name": name,
        "function_version": "$LATEST",
        "invoked_function_arn": f"arn:aws:lambda:{region}:{LOCAL_ACCOUNT}:function:{name}",
        "memory_limit_in_mb": str(function.memory_size),
        "log_group_name": f"/aws/lambda/{name}",
        "log_stream_name": f"{stream_day}/[$LATEST]{uuid.uuid4().hex}",
    }


def child_environment(
    base: Mapping[str, str],
    function: SamFunction,
    context: Mapping[str, str],
    overrides: Mapping[str, str],
    task_root: Path,
    region: str,
) -> dict[str, str]:
    """The child's variables: these, Lambda's, the template's, then ``--env``."""
    env = {
        key: value
        for key, value in base.items()
        if key not in ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP")
    }
    env.update(
        AWS_LAMBDA_FUNCTION_NAME=context["function_name"],
        AWS_LAMBDA_FUNCTION_MEMORY_SIZE=context["memory_limit_in_mb"],
        AWS_LAMBDA_FUNCTION_VERSION=context["function_version"],
        AWS_LAMBDA_LOG_GROUP_NAME=context["log_group_name"],
        AWS_LAMBDA_LOG_STREAM_NAME=context["log_stream_name"],
        AWS_LAMBDA_INITIALIZATION_TYPE="on-demand",
        AWS_REGION=region,
        AWS_DEFAULT_REGION=region,
        LAMBDA_TASK_ROOT=str(task_root),
        _HANDLER=function.handler,
        TZ=":UTC",
    )
    if function.runtime:
        env["AWS_EXECUTION_ENV"] = f"AWS_Lambda_{function.runtime}"
    env.update(function.environment)
    env.update(overrides)
    return env


def _run_child(python: Path, payload: str, env: dict[str, str], timeout: int) -> int:
    """Run the child; its exit status. The child enforces the timeout itself."""
    child = Path(__file__).with_name("invoke_child.py")
    try:
        process = subprocess.Popen(
            [str(python), str(child)], stdin=subprocess.PIPE, env=env, text=True
        )
    except OSError as error:
        raise FleeceError(f"cannot run {python}: {error.strerror}") from None
    try:
        assert process.stdin is not None
        process.stdin.write(payload)
        process.stdin.close()
        return process.wait(timeout=timeout + INIT_ALLOWANCE)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        raise FleeceError(
            f"the function did not finish within {INIT_ALLOWANCE} s of init and its "
            f"{timeout} s timeout: stopped"
        ) from None
    finally:
        if process.poll() is None:  # interrupted: never leave the child running
            process.kill()
            process.wait()


def _project_name(service: Path) -> str:
    """The project's name from ``.fleece/answers.yml``, else the folder's name."""
    from fleece.service.layout import load_answers

    try:
        name = load_answers(service).get("project_name")
    except BadInput:
        name = None
    return name if isinstance(name, str) and name else service.name
