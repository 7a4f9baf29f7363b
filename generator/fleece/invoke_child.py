"""Run a Lambda handler once, as Lambda's Python runtime does: the child of ``fleece invoke``.

``fleece invoke`` runs this file with the service's own Python (standard
library only: fleece is not installed there) and writes the invocation on
its standard input as JSON: ``handler`` (``module.function``),
``task_root``, ``event``, ``timeout`` (seconds) and the ``context`` fields.

The handler's prints and log lines go to standard error, as they go to the
function's log on Lambda, between Lambda's ``START``, ``END`` and ``REPORT``
lines; standard output gets only the answer, as JSON, so ``fleece invoke |
jq`` works. An exception becomes Lambda's ``[ERROR]`` log line with the
traceback and its error document on standard output, exit status 1; so
does an answer JSON cannot hold (``Runtime.MarshalError``). A handler still
running at the timeout ends the process with Lambda's ``Task timed out``.
"""

import importlib
import json
import os
import resource
import sys
import threading
import time
import traceback
from types import SimpleNamespace, TracebackType
from typing import Any, TextIO

TIMED_OUT = 1


class LambdaContext:
    """The context object of Lambda's Python runtime, its attributes and their types."""

    def __init__(self, fields: dict[str, Any], deadline_ms: int) -> None:
        self.aws_request_id: str = fields["aws_request_id"]
        self.function_name: str = fields["function_name"]
        self.function_version: str = fields["function_version"]
        self.invoked_function_arn: str = fields["invoked_function_arn"]
        self.memory_limit_in_mb: str = fields["memory_limit_in_mb"]
        self.log_group_name: str = fields["log_group_name"]
        self.log_stream_name: str = fields["log_stream_name"]
        self.client_context: Any = None
        self.identity = SimpleNamespace(
            cognito_identity_id=None, cognito_identity_pool_id=None
        )
        self.tenant_id: str | None = None
        self._deadline_ms = deadline_ms

    def get_remaining_time_in_millis(self) -> int:
        """Milliseconds left before the invocation times out."""
        return max(0, self._deadline_ms - int(time.time() * 1000))


def main(stdin: TextIO, answer: TextIO, log: TextIO) -> int:
    """Invoke the handler described on ``stdin``; the exit status."""
    spec = json.load(stdin)
    request_id = spec["context"]["aws_request_id"]
    sys.stdout = log  # the handler's prints belong to the log, as on Lambda
    sys.path.insert(0, spec["task_root"])
    module_name, _, function_name = spec["handler"].rpartition(".")
    try:
        module = importlib.import_module(module_name)
    except Exception as error:
        return fail(
            answer,
            log,
            "Runtime.ImportModuleError",
            f"Unable to import module '{module_name}': {error}",
            request_id,
            error,
        )
    handler = getattr(module, function_name, None)
    if not callable(handler):
        message = f"Handler '{function_name}' missing on module '{module_name}'"
        return fail(answer, log, "Runtime.HandlerNotFound", message, request_id)
    timeout = float(spec["timeout"])
    started = time.time()
    context = LambdaContext(spec["context"], int((started + timeout) * 1000))
    log.write(f"START RequestId: {request_id} Version: {context.function_version}\n")
    watchdog = threading.Timer(timeout, time_out, (answer, log, request_id, timeout))
    watchdog.daemon = True
    watchdog.start()
    try:
        result = handler(spec["event"], context)
    except Exception as error:
        watchdog.cancel()
        return fail(
            answer,
            log,
            type(error).__name__,
            str(error),
            request_id,
            error,
            started,
            context,
        )
    watchdog.cancel()
    try:
        text = json.dumps(result)
    except (TypeError, ValueError) as error:
        message = f"Unable to marshal response: {error}"
        return fail(
            answer,
            log,
            "Runtime.MarshalError",
            message,
            request_id,
            None,
            started,
            context,
        )
    report(log, request_id, started, context)
    answer.write(text + "\n")
    answer.flush()
    return 0


def fail(
    answer: TextIO,
    log: TextIO,
    error_type: str,
    message: str,
    request_id: str,
    error: BaseException | None = None,
    started: float | None = None,
    context: LambdaContext | None = None,
) -> int:
    """Log the failure as Lambda does and answer its error document; status 1."""
    frames = handler_frames(error)
    stack = traceback.format_list(traceback.extract_tb(frames)) if frames else []
    log.write(f"[ERROR] {error_type}: {message}\n")
    if error is not None:
        log.write("".join(traceback.format_exception(type(error), error, frames)))
    if started is not None and context is not None:
        report(log, request_id, started, context)
    document = {
        "errorMessage": message,
        "errorType": error_type,
        "requestId": request_id,
        "stackTrace": stack,
    }
    answer.write(json.dumps(document) + "\n")
    answer.flush()
    return 1


def handler_frames(error: BaseException | None) -> TracebackType | None:
    """The traceback of ``error`` from the handler's code on, as Lambda shows it."""
    frames = error.__traceback__ if error is not None else None
    while frames is not None and frames.tb_frame.f_code.co_filename == __file__:
        frames = frames.tb_next
    return frames


def report(
    log: TextIO, request_id: str, started: float, context: LambdaContext
) -> None:
    """Lambda's END and REPORT lines."""
    duration = (time.time() - started) * 1000
    used = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
    log.write(f"END RequestId: {request_id}\n")
    log.write(
        f"REPORT RequestId: {request_id}\tDuration: {duration:.2f} ms\t"
        f"Billed Duration: {max(1, round(duration))} ms\t"
        f"Memory Size: {context.memory_limit_in_mb} MB\tMax Memory Used: {used} MB\n"
    )
    log.flush()


def time_out(answer: TextIO, log: TextIO, request_id: str, timeout: float) -> None:
    """What Lambda does at the timeout: log it, answer it, end the process."""
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime())
    message = f"{stamp}Z {request_id} Task timed out after {timeout:.2f} seconds"
    log.write(message + "\n")
    log.flush()
    answer.write(json.dumps({"errorMessage": message}) + "\n")
    answer.flush()
    os._exit(TIMED_OUT)


if __name__ == "__main__":
    sys.exit(main(sys.stdin, sys.stdout, sys.stderr))
