"""``fleece run``: a command with the AWS credentials of an environment.

The target is an AWS account (``-a``), an environment of ``environments.yml``
(``-e``), or a stage that the file's ``stages:`` map sends to an environment
(``-s``). Credentials come through ``fleece.aws.credentials`` (the same path
``fleece config`` takes): the environment's AWS profile, else Rackspace FAWS
with a login from the flags or the environment variables; then the role, if
any, is assumed with STS.

The command runs without a shell: its arguments reach it exactly as given. The
credentials go into the child's environment only; fleece exits with the
child's exit code (128 + N when a signal N ended it, as shells report it).
"""

import dataclasses
import os
import re
import signal
import subprocess
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

from fleece.aws.credentials import AwsCredentials, credentials_of
from fleece.aws.environments import Environment, load_environments
from fleece.aws.rackspace import rackspace_login
from fleece.aws.session import session_for_environment
from fleece.errors import BadInput, FleeceError

__all__ = ["CommandNotRunnable", "RunRequest", "child_environment", "run"]

# Variables that would make the child's AWS tools ignore the credentials given.
_SHADOWING = ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SECURITY_TOKEN")


class CommandNotRunnable(FleeceError):
    """The command cannot be started: 127 when not found, 126 when not executable."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


@dataclass(frozen=True)
class RunRequest:
    """Every setting of one ``fleece run``."""

    command: tuple[str, ...]
    username: str | None = None
    api_key: str | None = None
    config: Path = Path("environments.yml")
    account: str | None = None
    environment: str | None = None
    stage: str | None = None
    role: str | None = None


def run(request: RunRequest) -> int:
    """Run the command with the target's credentials; its exit code."""
    target = resolve_target(request)
    login = (
        None
        if target.profile
        else rackspace_login(target, request.username, request.api_key)
    )
    if target.profile is None and login is None:
        raise BadInput(_missing_login_message(target))
    session = session_for_environment(target, login=login)
    # The environment's region, else the one its profile (or AWS config) names.
    region = target.region or session.region_name
    return _run_child(
        request.command,
        child_environment(os.environ, credentials_of(session), region),
    )


def resolve_target(request: RunRequest) -> Environment:
    """The environment to get credentials for; ``-r`` overrides its role."""
    chosen = [
        flag
        for flag, value in (
            ("--account", request.account),
            ("--environment", request.environment),
            ("--stage", request.stage),
        )
        if value
    ]
    if len(chosen) > 1:
        raise BadInput(f"{' and '.join(chosen)} cannot be used together: give one")
    if not chosen:
        raise BadInput("give the target: --account, --environment or --stage")
    if not request.command:
        raise BadInput("give the command to run, e.g. fleece run -e dev -- aws s3 ls")
    if request.account is not None:
        if not re.fullmatch(r"\d{12}", request.account):
            raise BadInput(
                f"--account {request.account!r} is not a 12-digit AWS account id"
            )
        target = Environment(name=request.account, account=request.account)
    else:
        environments = load_environments(request.config)
        if request.environment is not None:
            target = environments.get(request.environment)
        else:
            assert request.stage is not None
            target = environments.for_stage(request.stage)
    if request.role:
        target = dataclasses.replace(target, role=request.role)
    return target


def child_environment(
    environ: Mapping[str, str], credentials: AwsCredentials, region: str | None
) -> dict[str, str]:
    """The child's variables: ours, with the credentials (and region) set.

    ``AWS_PROFILE`` is removed so the credentials are the ones used; the
    profile's region, which the child would no longer see, is in ``region``.
    """
    child = {k: v for k, v in environ.items() if k not in _SHADOWING}
    child.pop("AWS_SESSION_TOKEN", None)
    child.update(credentials.as_environment())
    if region:
        child["AWS_REGION"] = child["AWS_DEFAULT_REGION"] = region
    return child


def _missing_login_message(target: Environment) -> str:
    variables = "RS_USERNAME and RS_API_KEY"
    if target.rs_username_var or target.rs_apikey_var:
        named = " and ".join(
            v for v in (target.rs_username_var, target.rs_apikey_var) if v
        )
        variables = f"{named} (or {variables})"
    return (
        f"missing Rackspace credentials for {target.name}: pass --username and "
        f"--apikey, or set {variables}"
    )


def _run_child(command: Sequence[str], environ: dict[str, str]) -> int:
    try:
        child = subprocess.Popen(list(command), env=environ)
    except FileNotFoundError:
        hint = ""
        if len(command) == 1 and " " in command[0]:
            hint = (
                ": fleece run uses no shell, so pass the words separately "
                "(fleece run -e ENV -- aws s3 ls) or run one (-- sh -c '...')"
            )
        raise CommandNotRunnable(
            f"command not found: {command[0]!r}{hint}", 127
        ) from None
    except PermissionError:
        raise CommandNotRunnable(
            f"command not executable: {command[0]!r}", 126
        ) from None

    # The child gets Ctrl-C from the terminal itself; a TERM sent to fleece is
    # passed on. Either way fleece waits and reports how the child ended.
    def forward(signum: int, _frame: FrameType | None) -> None:
        child.send_signal(signum)

    in_main_thread = threading.current_thread() is threading.main_thread()
    previous = (
        {
            signal.SIGINT: signal.signal(signal.SIGINT, signal.SIG_IGN),
            signal.SIGTERM: signal.signal(signal.SIGTERM, forward),
        }
        if in_main_thread  # only the main thread may handle signals
        else {}
    )
    try:
        code = child.wait()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    return 128 - code if code < 0 else code
