"""fleece_runtime: logging, AWS and HTTP clients, and X-Ray tracing for a Lambda.

One file, standard library only at import time. boto3/botocore and requests
are imported by the functions that use them. Migrating from the original
fleece package is one import line::

    from fleece_runtime import boto3, log, requests, xray

    log.setup_root_logger()
    logger = log.get_logger(__name__)


    @log.inject_request_ids_into_environment
    def handler(event, context):
        logger.info("order_saved", order_id=7)
        s3 = boto3.client("s3", timeout=5)
        requests.get("https://example.com", timeout=3, retries=2)

Sections: logging; boto3 wrappers; requests wrappers; X-Ray. Each ends with
the namespace object (``log``, ``boto3``, ``requests``, ``xray``) that groups
its public names; the names that do not collide are also importable flat
(``from fleece_runtime import get_logger``).

This file belongs to fleece: `fleece update` replaces it, so do not edit it.
"""

# The file runs on Python 3.11, which has no PEP 695 syntax, while the
# services' ruff may target 3.12+ and ask for it.
# ruff: noqa: UP046, UP047, RUF100

from __future__ import annotations

import contextvars
import enum
import functools
import json
import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Mapping
from types import MappingProxyType

# Annotations are never evaluated (see the __future__ import), so `typing` is
# needed by type checkers only; they read this name as True. Not importing it
# saves about 2 ms of every cold start.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from types import TracebackType
    from typing import IO, Any, ParamSpec, TypeVar

    import requests as _requests_lib
    from urllib3.util.retry import Retry as _Retry

    _P = ParamSpec("_P")
    _R = TypeVar("_R")
    _ExcInfo = (
        bool
        | BaseException
        | tuple[type[BaseException], BaseException, TracebackType | None]
        | tuple[None, None, None]
        | None
    )
    _Timeout = float | tuple[float | None, float | None]

__all__ = [
    "Classification",
    "JsonFormatter",
    "Logger",
    "RetryHandler",
    "bind",
    "boto3",
    "getLogger",
    "get_logger",
    "in_current_context",
    "inject_request_ids_into_environment",
    "log",
    "monkey_patch_botocore_for_xray",
    "monkey_patch_requests_for_xray",
    "requests",
    "setup_root_logger",
    "trace_xray_subsegment",
    "unbind",
    "xray",
]


def _missing(package: str, error: ImportError) -> ImportError:
    """The error raised when an optional dependency is not installed."""
    missing = ImportError(
        f"fleece_runtime needs the package {package!r} for this call: "
        f"add it to src/requirements.txt (pip install {package})"
    )
    missing.__cause__ = error
    return missing


# ---------------------------------------------------------------------------
# Logging: JSON lines, per-invocation context, classification, retries
# ---------------------------------------------------------------------------

_FIELDS_ATTR = "fleece_fields"
_REDACTED = "[REDACTED]"
_NO_FIELDS: Mapping[str, Any] = MappingProxyType({})
# Kept when an event is redacted: its classification, and the fields the
# runtime binds for every invocation (they say which call, not what data).
_KEPT_FIELDS = frozenset({"classification"})
_KEPT_BOUND_FIELDS = _KEPT_FIELDS | {
    "lambda_request_id",
    "api_request_id",
    "cold_start",
}
# JSON leaves these raw, but str.splitlines() (and some log readers) break
# lines at them; every other non-ASCII character stays readable.
_LINE_BREAKS = str.maketrans(
    {"\u2028": "\\u2028", "\u2029": "\\u2029", "\x85": "\\u0085"}
)

# The fields bound for the current invocation. The mapping is never mutated,
# only replaced, so every thread and task sees a consistent snapshot.
_context: contextvars.ContextVar[Mapping[str, Any]] = contextvars.ContextVar(
    "fleece_log_context"
)
_cold_start = True


class Classification(enum.IntEnum):
    """How sensitive the data of a log event is, least to most sensitive.

    Log it as a field: ``logger.info("signed_up", classification=Classification.PII,
    email=email)`` writes ``"classification": "PII"``. A formatter built with
    ``redact_above=`` replaces the fields of events classified above that level.
    A classification that is none of these levels (a typo, ``"secret"``) fails
    closed: such events are redacted whenever ``redact_above`` is set.
    """

    NA = 0
    AUTHORIZATION_INFO = 1
    CORPORATE_SENSITIVE_INFO = 2
    PII = 3


def bind(**fields: Any) -> None:
    """Add ``fields`` to every log line of the current invocation.

    Inside a handler decorated with `inject_request_ids_into_environment` the
    fields last until the invocation ends; bound outside any invocation (at
    import), they apply to every invocation of the process.
    """
    _context.set({**_context.get(_NO_FIELDS), **fields})


def unbind(*keys: str) -> None:
    """Remove bound fields from the current invocation's log lines."""
    current = _context.get(_NO_FIELDS)
    _context.set({key: value for key, value in current.items() if key not in keys})


def in_current_context(func: Callable[_P, _R]) -> Callable[_P, _R]:
    """``func``, run in the logging and tracing context of the caller of this.

    Threads, and the workers of a ``ThreadPoolExecutor``, start with an empty
    context (Python's rule): their log lines would lack the request ids and
    bound fields, and their X-Ray subsegments would hang from the Lambda
    segment instead of the traced function that started them. Wrap the
    function where you hand it over::

        executor.submit(in_current_context(resize), image)
        threading.Thread(target=in_current_context(poll)).start()

    The context is captured when ``in_current_context`` is called; each call
    of the returned function runs in its own copy of it, so calls may run at
    once in several threads, and what they `bind` stays theirs.
    """
    captured = contextvars.copy_context()

    @functools.wraps(func)
    def in_context(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        return captured.copy().run(func, *args, **kwargs)

    return in_context


def _record_attributes() -> frozenset[str]:
    """The attributes of a bare LogRecord, plus the 3 that formatting may add."""
    record = logging.LogRecord("", 0, "", 0, "", (), None)
    return frozenset(record.__dict__) | {"message", "asctime", _FIELDS_ATTR}


class JsonFormatter(logging.Formatter):
    """Formats a record as one JSON object on a single line.

    Fields in order: ``timestamp`` (ISO 8601 UTC), ``level``, ``logger``,
    ``event`` (the message), the invocation's bound fields (request ids,
    ``cold_start``, `bind`), the record's ``extra=`` and keyword fields, then
    ``exception`` and ``stack`` when present. Values JSON cannot represent are
    written as strings (dates in ISO format).

    The line is one line for every reader: besides the escapes of JSON,
    U+2028, U+2029 and U+0085 are escaped; other characters are written as is.

    ``redact_above`` (a `Classification` or its name): for events whose
    ``classification`` is above this level, or is not a level at all, every
    field (keyword, ``extra=`` and bound with `bind`) except the request ids,
    ``cold_start`` and ``classification`` becomes ``"[REDACTED]"``, and the
    event is written without its %-arguments. The event text itself is kept:
    put sensitive values in fields or %-arguments, never in an f-string.
    """

    def __init__(self, *, redact_above: Classification | str | None = None) -> None:
        super().__init__()
        level = None if redact_above is None else _classification(redact_above)
        if redact_above is not None and level is None:
            raise ValueError(
                f"redact_above must be a Classification or the name of one, "
                f"not {redact_above!r}"
            )
        self.redact_above = level
        self._standard = _record_attributes()
        # A record with more attributes than a bare one carries fields.
        self._standard_count = len(self._standard) - 3
        self._second: tuple[int, str] = (-1, "")
        self._encode = json.JSONEncoder(
            ensure_ascii=False, default=_json_default, check_circular=False
        ).encode

    def format(self, record: logging.LogRecord) -> str:
        """The JSON line for ``record``, without the trailing newline."""
        bound = _context.get(_NO_FIELDS)
        fields = self._fields(record)
        classification: object = None
        redact = False
        if "classification" in fields or "classification" in bound:
            value = fields.get("classification")
            classification, redact = self._classify(
                bound.get("classification") if value is None else value
            )
        timestamp = self._timestamp(record)
        # Redacted: the message template without its (sensitive) arguments.
        event = str(record.msg) if redact and record.args else record.getMessage()
        line: dict[str, Any] = {
            "timestamp": timestamp,
            "level": record.levelname,
            "logger": record.name,
            "event": event,
        }
        if bound:
            line.update(_redacted(bound, _KEPT_BOUND_FIELDS) if redact else bound)
        if fields:
            line.update(_redacted(fields, _KEPT_FIELDS) if redact else fields)
        if classification is not None:
            line["classification"] = classification
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            line["exception"] = record.exc_text
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        if bound or fields:  # a field named like a core field must not replace it
            line["timestamp"] = timestamp
            line["level"] = record.levelname
            line["logger"] = record.name
            line["event"] = event
        text = self._encode(line)
        if "\u2028" in text or "\u2029" in text or "\x85" in text:
            text = text.translate(_LINE_BREAKS)
        return text

    def _classify(self, value: object) -> tuple[object, bool]:
        """(classification as written, whether to redact) of a classified event."""
        if value is None:
            return None, False
        level = _classification(value)
        if level is None:  # not a level: fail closed
            return value, self.redact_above is not None
        return level.name, self.redact_above is not None and level > self.redact_above

    def _fields(self, record: logging.LogRecord) -> dict[str, Any]:
        attributes = record.__dict__
        added = len(attributes) - self._standard_count
        if added <= 0:
            return {}
        keyword: dict[str, Any] | None = attributes.get(_FIELDS_ATTR)
        if added == 1 and keyword is not None:
            return keyword
        standard = self._standard
        fields = {k: v for k, v in attributes.items() if k not in standard}
        if keyword:
            fields.update(keyword)
        return fields

    def _timestamp(self, record: logging.LogRecord) -> str:
        second = int(record.created)
        cached_second, prefix = self._second
        if cached_second != second:
            prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
            self._second = (second, prefix)
        return f"{prefix}.{int(record.msecs):03d}Z"


def _redacted(fields: Mapping[str, Any], kept: frozenset[str]) -> dict[str, Any]:
    return {key: value if key in kept else _REDACTED for key, value in fields.items()}


def _classification(value: object) -> Classification | None:
    if isinstance(value, Classification):
        return value
    if isinstance(value, str):
        return Classification.__members__.get(value.upper())
    return None


def _json_default(value: object) -> object:
    isoformat = getattr(value, "isoformat", None)
    if callable(isoformat):
        return isoformat()
    if isinstance(value, set | frozenset):
        return sorted(value, key=repr)
    if isinstance(value, bytes):
        return value.decode("utf-8", "backslashreplace")
    return str(value)


class Logger:
    """A logger whose calls take keyword fields: ``logger.info("saved", order_id=7)``.

    It wraps a standard `logging.Logger` (``.stdlib``): levels, handlers,
    ``exc_info=``, ``stack_info=`` and ``stacklevel=`` work as usual. The
    keyword fields, and those of ``extra=`` (any key, even "name"), travel on
    the record to `JsonFormatter`.
    """

    __slots__ = ("stdlib",)

    def __init__(self, logger: logging.Logger) -> None:
        self.stdlib = logger

    def __repr__(self) -> str:
        return f"<fleece_runtime.Logger {self.stdlib.name!r}>"

    @property
    def name(self) -> str:
        """The logger's name."""
        return self.stdlib.name

    def setLevel(self, level: int | str) -> None:
        """Set the level of the wrapped logger."""
        self.stdlib.setLevel(level)

    def isEnabledFor(self, level: int) -> bool:
        """True when a record of ``level`` would be processed."""
        return self.stdlib.isEnabledFor(level)

    def bind(self, **fields: Any) -> Logger:
        """Bind ``fields`` for the current invocation (see `bind`); returns self."""
        bind(**fields)
        return self

    def unbind(self, *keys: str) -> Logger:
        """Remove bound fields (see `unbind`); returns self."""
        unbind(*keys)
        return self

    def debug(
        self,
        event: object,
        *args: object,
        exc_info: _ExcInfo = None,
        stack_info: bool = False,
        stacklevel: int = 1,
        extra: Mapping[str, object] | None = None,
        **fields: Any,
    ) -> None:
        """Log ``event`` at DEBUG with keyword ``fields``."""
        if self.stdlib.isEnabledFor(logging.DEBUG):
            self._log(
                logging.DEBUG,
                event,
                args,
                exc_info,
                stack_info,
                stacklevel,
                extra,
                fields,
            )

    def info(
        self,
        event: object,
        *args: object,
        exc_info: _ExcInfo = None,
        stack_info: bool = False,
        stacklevel: int = 1,
        extra: Mapping[str, object] | None = None,
        **fields: Any,
    ) -> None:
        """Log ``event`` at INFO with keyword ``fields``."""
        if self.stdlib.isEnabledFor(logging.INFO):
            self._log(
                logging.INFO,
                event,
                args,
                exc_info,
                stack_info,
                stacklevel,
                extra,
                fields,
            )

    def warning(
        self,
        event: object,
        *args: object,
        exc_info: _ExcInfo = None,
        stack_info: bool = False,
        stacklevel: int = 1,
        extra: Mapping[str, object] | None = None,
        **fields: Any,
    ) -> None:
        """Log ``event`` at WARNING with keyword ``fields``."""
        if self.stdlib.isEnabledFor(logging.WARNING):
            self._log(
                logging.WARNING,
                event,
                args,
                exc_info,
                stack_info,
                stacklevel,
                extra,
                fields,
            )

    def error(
        self,
        event: object,
        *args: object,
        exc_info: _ExcInfo = None,
        stack_info: bool = False,
        stacklevel: int = 1,
        extra: Mapping[str, object] | None = None,
        **fields: Any,
    ) -> None:
        """Log ``event`` at ERROR with keyword ``fields``."""
        if self.stdlib.isEnabledFor(logging.ERROR):
            self._log(
                logging.ERROR,
                event,
                args,
                exc_info,
                stack_info,
                stacklevel,
                extra,
                fields,
            )

    def exception(
        self,
        event: object,
        *args: object,
        exc_info: _ExcInfo = True,
        stack_info: bool = False,
        stacklevel: int = 1,
        extra: Mapping[str, object] | None = None,
        **fields: Any,
    ) -> None:
        """Log ``event`` at ERROR with the exception being handled."""
        if self.stdlib.isEnabledFor(logging.ERROR):
            self._log(
                logging.ERROR,
                event,
                args,
                exc_info,
                stack_info,
                stacklevel,
                extra,
                fields,
            )

    def critical(
        self,
        event: object,
        *args: object,
        exc_info: _ExcInfo = None,
        stack_info: bool = False,
        stacklevel: int = 1,
        extra: Mapping[str, object] | None = None,
        **fields: Any,
    ) -> None:
        """Log ``event`` at CRITICAL with keyword ``fields``."""
        if self.stdlib.isEnabledFor(logging.CRITICAL):
            self._log(
                logging.CRITICAL,
                event,
                args,
                exc_info,
                stack_info,
                stacklevel,
                extra,
                fields,
            )

    def log(
        self,
        level: int,
        event: object,
        *args: object,
        exc_info: _ExcInfo = None,
        stack_info: bool = False,
        stacklevel: int = 1,
        extra: Mapping[str, object] | None = None,
        **fields: Any,
    ) -> None:
        """Log ``event`` at ``level`` with keyword ``fields``."""
        if self.stdlib.isEnabledFor(level):
            self._log(
                level, event, args, exc_info, stack_info, stacklevel, extra, fields
            )

    def _log(
        self,
        level: int,
        event: object,
        args: tuple[object, ...],
        exc_info: _ExcInfo,
        stack_info: bool,
        stacklevel: int,
        extra: Mapping[str, object] | None,
        fields: dict[str, Any],
    ) -> None:
        # ``extra`` joins the keyword fields rather than the record's
        # attributes, where a key such as "name" would raise KeyError.
        if extra:
            fields = {**extra, **fields}
        attributes = {_FIELDS_ATTR: fields} if fields else None
        # The stdlib's own Logger.log/info call `_log` like this, after the
        # level check the public method above has made. +2: this method and
        # the public one sit between the caller and the stdlib logger.
        self.stdlib._log(
            level,
            event,
            args,
            exc_info=exc_info,
            extra=attributes,
            stack_info=stack_info,
            stacklevel=stacklevel + 2,
        )


def get_logger(name: str | None = None) -> Logger:
    """The `Logger` for ``name`` (usually ``__name__``); the root logger for None."""
    return Logger(logging.getLogger(name))


getLogger = get_logger  # the stdlib spelling, kept for migration


def setup_root_logger(
    level: int | str = logging.INFO,
    stream: IO[str] | None = None,
    *,
    redact_above: Classification | str | None = None,
) -> logging.Handler:
    """Send every log record of the process to ``stream`` as JSON lines.

    Removes the root logger's handlers (on Lambda, the runtime's plain-text
    one) and installs a single stream handler with a `JsonFormatter`, so
    records of plain `logging` loggers and of libraries come out as JSON
    too. ``stream`` defaults to the current ``sys.stdout``. Returns the handler.
    """
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    handler = logging.StreamHandler(sys.stdout if stream is None else stream)
    handler.setFormatter(JsonFormatter(redact_above=redact_above))
    root.addHandler(handler)
    root.setLevel(level)
    return handler


class _DefaultFallback:
    """The default of `RetryHandler`'s ``fallback``: a stderr handler."""


_STDERR = _DefaultFallback()


class RetryHandler(logging.Handler):
    """Retries a log handler that sometimes fails, such as a network one.

    One attempt plus up to ``max_retries`` retries; after failed attempt ``k``
    (from 0) it sleeps ``random() * min(backoff_cap, backoff_base * 2**k)``
    seconds (full jitter). The wrapped handler's level and filters apply, and
    failures it reports through ``handleError`` count as failures.

    When every attempt fails, ``fallback`` receives the record: by default a
    stderr handler with the wrapped handler's formatter, ``None`` to drop the
    record. Then the first error is re-raised if ``ignore_errors`` is False.
    """

    def __init__(
        self,
        handler: logging.Handler,
        max_retries: int = 5,
        backoff_base: float = 0.1,
        backoff_cap: float = 1,
        ignore_errors: bool = True,
        *,
        fallback: logging.Handler | _DefaultFallback | None = _STDERR,
    ) -> None:
        if max_retries < 0 or backoff_base < 0 or backoff_cap < 0:
            raise ValueError("max_retries, backoff_base and backoff_cap must be >= 0")
        super().__init__()
        self.handler = handler
        self.max_retries = max_retries
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self.ignore_errors = ignore_errors
        self.fallback = fallback

    def emit(self, record: logging.LogRecord) -> None:
        """Hand ``record`` to the wrapped handler, retrying on failure."""
        handler = self.handler
        if record.levelno < handler.level or not handler.filter(record):
            return
        import random

        first_error: BaseException | None = None
        for attempt in range(self.max_retries + 1):
            error = self._attempt(record)
            if error is None:
                return
            first_error = first_error or error
            if attempt < self.max_retries:
                delay = min(self.backoff_cap, self.backoff_base * 2**attempt)
                time.sleep(random.random() * delay)
        fallback = self.fallback
        if isinstance(fallback, _DefaultFallback):
            fallback = logging.StreamHandler(sys.stderr)
            fallback.setFormatter(handler.formatter or JsonFormatter())
        if fallback is not None:
            fallback.handle(record)
        if not self.ignore_errors and first_error is not None:
            raise first_error

    def _attempt(self, record: logging.LogRecord) -> BaseException | None:
        handler = self.handler
        reported: list[BaseException] = []

        def report(record: logging.LogRecord) -> None:
            error = sys.exc_info()[1]
            reported.append(
                error if error is not None else RuntimeError("handler failed")
            )

        handler.acquire()
        try:
            # Standard handlers catch their own errors and call handleError;
            # while we hold the handler's lock we route that call to us.
            setattr(handler, "handleError", report)  # noqa: B010
            try:
                handler.emit(record)
            finally:
                delattr(handler, "handleError")
        except Exception as error:  # noqa: BLE001 (any failure of any handler)
            return error
        finally:
            handler.release()
        return reported[0] if reported else None

    def setFormatter(self, fmt: logging.Formatter | None) -> None:
        """Set the formatter of the wrapped handler."""
        self.handler.setFormatter(fmt)

    def flush(self) -> None:
        """Flush the wrapped handler."""
        self.handler.flush()

    def close(self) -> None:
        """Close the wrapped handler, then this one."""
        self.handler.close()
        super().close()


def inject_request_ids_into_environment(handler: Callable[_P, _R]) -> Callable[_P, _R]:
    """Decorate a Lambda handler ``(event, context)``: request ids on every log line.

    Each invocation starts with a clean logging context holding
    ``lambda_request_id`` (``context.aws_request_id``), ``api_request_id``
    (API Gateway events only: ``event["requestContext"]["requestId"]``) and
    ``cold_start`` (true on the process's first invocation). Fields bound
    during the invocation end with it, so a warm container never logs the
    previous invocation's ids or fields.

    An ``async def`` handler gets the fields while its coroutine runs.
    """
    import inspect  # here, not at import: boto3 or asyncio has usually loaded it

    if inspect.iscoroutinefunction(handler):
        run: Any = handler

        @functools.wraps(handler)
        async def with_request_ids_async(*args: Any, **kwargs: Any) -> Any:
            token = _context.set(_invocation_fields(args, kwargs))
            try:
                return await run(*args, **kwargs)
            finally:
                _context.reset(token)

        wrapped: Any = with_request_ids_async
        async_handler: Callable[_P, _R] = wrapped
        return async_handler

    @functools.wraps(handler)
    def with_request_ids(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        token = _context.set(_invocation_fields(args, kwargs))
        try:
            return handler(*args, **kwargs)
        finally:
            _context.reset(token)

    return with_request_ids


def _invocation_fields(
    args: tuple[object, ...], kwargs: Mapping[str, object]
) -> dict[str, Any]:
    """The logging context of an invocation ``(event, context)`` that starts now."""
    global _cold_start
    event = args[0] if args else kwargs.get("event")
    context = args[1] if len(args) > 1 else kwargs.get("context")
    fields: dict[str, Any] = dict(_context.get(_NO_FIELDS))
    request_id = getattr(context, "aws_request_id", None)
    if request_id is not None:
        fields["lambda_request_id"] = request_id
    api_request_id = _api_request_id(event)
    if api_request_id is not None:
        fields["api_request_id"] = api_request_id
    fields["cold_start"] = _cold_start
    _cold_start = False
    return fields


def _api_request_id(event: object) -> str | None:
    if not isinstance(event, Mapping):
        return None
    request_context = event.get("requestContext")
    if not isinstance(request_context, Mapping):
        return None
    request_id = request_context.get("requestId")
    return request_id if isinstance(request_id, str) else None


class _LogNamespace:
    """Logging, as ``from fleece_runtime import log`` (was ``fleece.log``)."""

    __slots__ = ()
    Classification = Classification
    JsonFormatter = JsonFormatter
    Logger = Logger
    RetryHandler = RetryHandler
    bind = staticmethod(bind)
    unbind = staticmethod(unbind)
    in_current_context = staticmethod(in_current_context)
    get_logger = staticmethod(get_logger)
    getLogger = get_logger
    setup_root_logger = staticmethod(setup_root_logger)
    inject_request_ids_into_environment = staticmethod(
        inject_request_ids_into_environment
    )


log = _LogNamespace()


# ---------------------------------------------------------------------------
# boto3: clients and resources with timeouts
# ---------------------------------------------------------------------------

_boto3_lock = threading.Lock()
# (connect_timeout, read_timeout) set by `boto3.set_default_timeout`.
_boto3_defaults: tuple[float | None, float | None] = (None, None)


def _check_timeout(name: str, value: object) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise ValueError(f"{name} must be a positive number of seconds, not {value!r}")
    return value


def _timeouts(
    timeout: float | None, connect_timeout: float | None, read_timeout: float | None
) -> tuple[float | None, float | None]:
    timeout = _check_timeout("timeout", timeout)
    connect = _check_timeout("connect_timeout", connect_timeout)
    read = _check_timeout("read_timeout", read_timeout)
    return (
        connect if connect is not None else timeout,
        read if read is not None else timeout,
    )


def _boto3_config(
    timeout: float | None,
    connect_timeout: float | None,
    read_timeout: float | None,
    config: Any,
) -> Any:
    """The botocore Config of a call: per-call values > config= > defaults."""
    try:
        from botocore.config import Config
    except ImportError as error:
        raise _missing("boto3", error) from None
    connect, read = _timeouts(timeout, connect_timeout, read_timeout)
    default_connect, default_read = _boto3_defaults
    merged = Config(
        **_present(connect_timeout=default_connect, read_timeout=default_read)
    )
    if config is not None:
        if not isinstance(config, Config):
            raise TypeError(f"config must be a botocore.config.Config, not {config!r}")
        merged = merged.merge(config)
    return merged.merge(Config(**_present(connect_timeout=connect, read_timeout=read)))


def _present(**values: float | None) -> dict[str, float]:
    return {key: value for key, value in values.items() if value is not None}


def _boto3_client(
    service_name: str,
    *args: Any,
    timeout: float | None = None,
    connect_timeout: float | None = None,
    read_timeout: float | None = None,
    config: Any = None,
    **kwargs: Any,
) -> Any:
    """``boto3.client(service_name, ...)`` with socket timeouts in seconds.

    ``timeout`` sets both; ``connect_timeout``/``read_timeout`` set one. An
    explicit value wins over a timeout in ``config=`` (which is merged, not
    replaced), which wins over `set_default_timeout`, which wins over
    botocore's own 60 seconds. Safe to call from several threads.
    """
    merged = _boto3_config(timeout, connect_timeout, read_timeout, config)
    import boto3 as _boto3

    with _boto3_lock:
        return _boto3.client(service_name, *args, config=merged, **kwargs)


def _boto3_resource(
    service_name: str,
    *args: Any,
    timeout: float | None = None,
    connect_timeout: float | None = None,
    read_timeout: float | None = None,
    config: Any = None,
    **kwargs: Any,
) -> Any:
    """``boto3.resource(service_name, ...)`` with the timeouts of `client`."""
    merged = _boto3_config(timeout, connect_timeout, read_timeout, config)
    import boto3 as _boto3

    with _boto3_lock:
        return _boto3.resource(service_name, *args, config=merged, **kwargs)


def _boto3_set_default_timeout(
    timeout: float | None = None,
    connect_timeout: float | None = None,
    read_timeout: float | None = None,
) -> None:
    """Timeouts for every later `client`/`resource` call that sets none.

    ``timeout`` sets both; calling with no argument restores botocore's own
    defaults (60 seconds). Best called once at import, before threads start.
    """
    global _boto3_defaults
    _boto3_defaults = _timeouts(timeout, connect_timeout, read_timeout)


class _Boto3Namespace:
    """boto3 with timeouts, as ``from fleece_runtime import boto3``."""

    __slots__ = ()
    client = staticmethod(_boto3_client)
    resource = staticmethod(_boto3_resource)
    set_default_timeout = staticmethod(_boto3_set_default_timeout)


boto3 = _Boto3Namespace()


# ---------------------------------------------------------------------------
# requests: timeouts, retries, one pooled session for module-level calls
# ---------------------------------------------------------------------------


_requests_lock = threading.Lock()
_requests_default_timeout: _Timeout | None = None
_requests_default_retries: Mapping[str, Any] | None = None
_shared_session: _requests_lib.Session | None = None
# The retries of the module-level call in progress in this thread or task.
_call_retries: contextvars.ContextVar[_Retry | None] = contextvars.ContextVar(
    "fleece_call_retries", default=None
)


def _check_requests_timeout(timeout: object) -> _Timeout | None:
    if isinstance(timeout, tuple):
        if len(timeout) != 2:
            raise ValueError(
                f"timeout must be a number or (connect, read), not {timeout!r}"
            )
        return (
            _check_timeout("connect timeout", timeout[0]),
            _check_timeout("read timeout", timeout[1]),
        )
    return _check_timeout("timeout", timeout)


def _make_retry(retries: object) -> _Retry:
    """A urllib3 Retry from the accepted forms; raises at once on bad input."""
    try:
        from urllib3.util.retry import Retry
    except ImportError as error:
        raise _missing("requests", error) from None
    if retries is None:
        if _requests_default_retries is None:
            return Retry(0, read=False)  # exactly what plain requests does
        return Retry(**_requests_default_retries)
    if isinstance(retries, Retry):
        return retries
    if isinstance(retries, bool):
        raise TypeError("retries must be an int, a dict of Retry arguments or a Retry")
    if isinstance(retries, int):
        if retries < 0:
            raise ValueError(f"retries must be >= 0, not {retries}")
        return Retry(total=retries)
    if isinstance(retries, Mapping):
        try:
            return Retry(**retries)
        except TypeError as error:
            raise TypeError(f"retries: {error}") from None
    raise TypeError(
        f"retries must be an int, a dict of Retry arguments or a Retry, not {retries!r}"
    )


@functools.cache
def _adapter_class() -> type[Any]:
    try:
        from requests.adapters import HTTPAdapter
    except ImportError as error:
        raise _missing("requests", error) from None

    class FleeceAdapter(HTTPAdapter):
        """An HTTPAdapter with a default timeout and per-call retries."""

        def __init__(self, timeout: _Timeout | None, retries: _Retry) -> None:
            self.default_timeout = timeout
            super().__init__(max_retries=retries)

        @property
        def max_retries(self) -> _Retry:
            return _call_retries.get() or self.session_retries

        @max_retries.setter
        def max_retries(self, value: _Retry) -> None:
            self.session_retries = value

        def send(self, request: Any, *args: Any, **kwargs: Any) -> Any:
            if kwargs.get("timeout") is None:
                kwargs["timeout"] = (
                    self.default_timeout
                    if self.default_timeout is not None
                    else _requests_default_timeout
                )
            return super().send(request, *args, **kwargs)

    return FleeceAdapter


def _requests_session(
    timeout: _Timeout | None = None, retries: Any = None
) -> _requests_lib.Session:
    """A ``requests.Session`` whose requests use ``timeout`` and ``retries``.

    ``timeout``: seconds, or ``(connect, read)``; None uses
    `set_default_timeout`'s value at the time of each request (if any).
    ``retries``: None (the defaults of `set_default_retries`, or none at all,
    as in plain requests), an int (total retries), a dict of urllib3 ``Retry``
    arguments, or a ``Retry``. Bad values raise here, not at the first request.
    """
    checked = _check_requests_timeout(timeout)
    retry = _make_retry(retries)
    import requests as _requests

    session = _requests.Session()
    adapter = _adapter_class()(checked, retry)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return session


def _shared() -> _requests_lib.Session:
    global _shared_session
    with _requests_lock:
        if _shared_session is None:
            import http.cookiejar

            session = _requests_session()
            # Plain requests.get() keeps no cookies between calls; neither
            # does the shared session (cookies within one call's redirects
            # still work: requests keeps them on the request).
            session.cookies.set_policy(
                http.cookiejar.DefaultCookiePolicy(allowed_domains=[])
            )
            _shared_session = session
        return _shared_session


def _requests_request(
    method: str,
    url: str,
    *,
    timeout: _Timeout | None = None,
    retries: Any = None,
    **kwargs: Any,
) -> _requests_lib.Response:
    """``requests.request`` with ``timeout`` and ``retries`` (see `Session`).

    Calls share one pooled session (connections are reused) that keeps no
    cookies, so each call behaves like a plain ``requests.request``.
    """
    checked = _check_requests_timeout(timeout)
    if checked is None:
        checked = _requests_default_timeout
    retry = _make_retry(retries)
    session = _shared()
    token = _call_retries.set(retry)
    try:
        return session.request(method, url, timeout=checked, **kwargs)
    finally:
        _call_retries.reset(token)


def _requests_get(
    url: str, params: Any = None, **kwargs: Any
) -> _requests_lib.Response:
    """``requests.get`` with ``timeout=`` and ``retries=`` (see `request`)."""
    kwargs.setdefault("allow_redirects", True)
    return _requests_request("GET", url, params=params, **kwargs)


def _requests_options(url: str, **kwargs: Any) -> _requests_lib.Response:
    """``requests.options`` with ``timeout=`` and ``retries=`` (see `request`)."""
    kwargs.setdefault("allow_redirects", True)
    return _requests_request("OPTIONS", url, **kwargs)


def _requests_head(url: str, **kwargs: Any) -> _requests_lib.Response:
    """``requests.head`` with ``timeout=`` and ``retries=`` (see `request`)."""
    kwargs.setdefault("allow_redirects", False)
    return _requests_request("HEAD", url, **kwargs)


def _requests_post(
    url: str, data: Any = None, json: Any = None, **kwargs: Any
) -> _requests_lib.Response:
    """``requests.post`` with ``timeout=`` and ``retries=`` (see `request`)."""
    return _requests_request("POST", url, data=data, json=json, **kwargs)


def _requests_put(url: str, data: Any = None, **kwargs: Any) -> _requests_lib.Response:
    """``requests.put`` with ``timeout=`` and ``retries=`` (see `request`)."""
    return _requests_request("PUT", url, data=data, **kwargs)


def _requests_patch(
    url: str, data: Any = None, **kwargs: Any
) -> _requests_lib.Response:
    """``requests.patch`` with ``timeout=`` and ``retries=`` (see `request`)."""
    return _requests_request("PATCH", url, data=data, **kwargs)


def _requests_delete(url: str, **kwargs: Any) -> _requests_lib.Response:
    """``requests.delete`` with ``timeout=`` and ``retries=`` (see `request`)."""
    return _requests_request("DELETE", url, **kwargs)


def _requests_set_default_timeout(timeout: _Timeout | None) -> None:
    """The timeout of every later request that sets none (None: no timeout).

    Seconds, or a ``(connect, read)`` tuple. Applies to module-level calls
    and to sessions created without a timeout.
    """
    global _requests_default_timeout
    _requests_default_timeout = _check_requests_timeout(timeout)


def _requests_set_default_retries(**retry_args: Any) -> None:
    """The retries of every later request that sets none: urllib3 ``Retry`` arguments.

    E.g. ``set_default_retries(total=5, backoff_factor=1, status_forcelist=[429,
    503])``. With no arguments, requests are not retried (as in plain requests).
    Bad arguments raise here.
    """
    global _requests_default_retries
    if retry_args:
        _make_retry(retry_args)
    _requests_default_retries = dict(retry_args) if retry_args else None


class _RequestsNamespace:
    """requests with timeouts and retries, as ``from fleece_runtime import requests``."""

    __slots__ = ()
    Session = staticmethod(_requests_session)
    request = staticmethod(_requests_request)
    get = staticmethod(_requests_get)
    options = staticmethod(_requests_options)
    head = staticmethod(_requests_head)
    post = staticmethod(_requests_post)
    put = staticmethod(_requests_put)
    patch = staticmethod(_requests_patch)
    delete = staticmethod(_requests_delete)
    set_default_timeout = staticmethod(_requests_set_default_timeout)
    set_default_retries = staticmethod(_requests_set_default_retries)


requests = _RequestsNamespace()


# ---------------------------------------------------------------------------
# X-Ray: subsegments sent to the daemon over UDP, without aws-xray-sdk
# ---------------------------------------------------------------------------

_XRAY_HEADER = b'{"format": "json", "version": 1}\n'
_XRAY_MAX_DATAGRAM = 64000
_XRAY_MAX_FRAMES = 32
_XRAY_NAME_CHARS = frozenset("_.:/%&#=+\\-@ ")

# (trace id, parent id) of the trace header it was opened under, and the id
# of the innermost open subsegment, in this thread or task. A tuple, never
# mutated: contexts copied into other threads share it safely.
_xray_parent: contextvars.ContextVar[tuple[tuple[str, str], str] | None] = (
    contextvars.ContextVar("fleece_xray_parent", default=None)
)
_xray_lock = threading.Lock()
_xray_sockets: dict[int, Any] = {}


class _Subsegment:
    """One open subsegment: its document and the context token to restore."""

    __slots__ = ("document", "token")

    def __init__(self, document: dict[str, Any], token: contextvars.Token[Any]) -> None:
        self.document = document
        self.token = token


def _begin(
    name: str, namespace: str | None = None, **fields: Any
) -> _Subsegment | None:
    """Open a subsegment (sent when it ends); None when not tracing."""
    header = _trace_header()
    if header is None:
        return None
    trace_id, parent_id = _trace_context(header)
    document: dict[str, Any] = {
        "type": "subsegment",
        "id": os.urandom(8).hex(),
        "trace_id": trace_id,
        "parent_id": parent_id,
        "name": name,
        "start_time": time.time(),
    }
    if namespace is not None:
        document["namespace"] = namespace
    document.update(fields)
    token = _xray_parent.set((header, document["id"]))
    return _Subsegment(document, token)


def _end(subsegment: _Subsegment, error: BaseException | None = None) -> None:
    """Close ``subsegment`` (recording ``error`` as a fault) and send it."""
    _xray_parent.reset(subsegment.token)
    document = subsegment.document
    document["end_time"] = time.time()
    if error is not None:
        if not (document.get("error") or document.get("throttle")):
            document["fault"] = True
        document["cause"] = _cause(error, remote=document.get("namespace") is not None)
    _send(document)


def _trace_header() -> tuple[str, str] | None:
    """(trace id, parent id) of the current invocation's sampled trace, else None."""
    header = os.environ.get("_X_AMZN_TRACE_ID")
    return _parse_trace_header(header) if header else None


def _trace_context(header: tuple[str, str]) -> tuple[str, str]:
    """(trace id, parent id) for a new subsegment under the trace ``header``.

    The innermost open subsegment is the parent, unless it was opened under
    another header: a context kept from an earlier invocation (even one of
    the same trace, which shares the Root) must not become the parent.
    """
    current = _xray_parent.get()
    if current is not None and current[0] == header:
        return header[0], current[1]
    return header


@functools.lru_cache(maxsize=8)
def _parse_trace_header(header: str) -> tuple[str, str] | None:
    """(trace id, parent id) of a sampled trace header, else None."""
    parts = dict(part.strip().partition("=")[::2] for part in header.split(";"))
    root, parent = parts.get("Root"), parts.get("Parent")
    if parts.get("Sampled") != "1" or not root or not parent:
        return None
    return root, parent


def _status_flags(status: int) -> dict[str, bool]:
    if status == 429:
        return {"error": True, "throttle": True}
    if 400 <= status < 500:
        return {"error": True}
    if status >= 500:
        return {"fault": True}
    return {}


def _cause(error: BaseException, remote: bool) -> Any:
    recorded = getattr(error, "_fleece_xray_id", None)
    if isinstance(recorded, str):
        return recorded  # already described by an inner subsegment
    import traceback

    exception_id = os.urandom(8).hex()
    vars(error)["_fleece_xray_id"] = exception_id
    frames = traceback.extract_tb(error.__traceback__)[-_XRAY_MAX_FRAMES:]
    return {
        "working_directory": os.getcwd(),
        "exceptions": [
            {
                "id": exception_id,
                "message": str(error),
                "type": type(error).__name__,
                "remote": remote,
                "stack": [
                    {
                        "path": os.path.basename(frame.filename),
                        "line": frame.lineno,
                        "label": frame.name,
                    }
                    for frame in reversed(frames)
                ],
            }
        ],
    }


def _send(document: dict[str, Any]) -> None:
    """Send one document to the daemon; tracing never breaks or slows a call."""
    try:
        data = _XRAY_HEADER + json.dumps(document, default=str).encode("utf-8")
        if len(data) > _XRAY_MAX_DATAGRAM:
            trimmed = {
                k: v for k, v in document.items() if k not in ("metadata", "cause")
            }
            data = _XRAY_HEADER + json.dumps(trimmed, default=str).encode("utf-8")
        address = _daemon_address(os.environ.get("AWS_XRAY_DAEMON_ADDRESS", ""))
        if address is not None:
            _udp_socket(address[0]).sendto(data, address[1])
    except (OSError, ValueError, TypeError, RuntimeError):
        pass  # noqa: S110 (no daemon, no trace: the traced call goes on)


@functools.lru_cache(maxsize=4)
def _daemon_address(setting: str) -> tuple[int, tuple[str, int]] | None:
    """(address family, (ip, port)) of the daemon's UDP address, or None."""
    import ipaddress
    import socket

    udp = setting.strip() or "127.0.0.1:2000"
    for part in udp.split():  # "tcp:host:port udp:host:port" or "host:port"
        if part.startswith("udp:"):
            udp = part[4:]
    host, _, port = udp.rpartition(":")
    host = host.strip("[]")
    try:
        number = int(port)
        if host == "localhost":
            host = "127.0.0.1"
        ip = ipaddress.ip_address(host)
    except ValueError:
        try:  # a host name: resolved once, here, never per call
            family, _, _, _, sockaddr = socket.getaddrinfo(
                host, port, type=socket.SOCK_DGRAM
            )[0]
            return int(family), (str(sockaddr[0]), int(sockaddr[1]))
        except (OSError, ValueError):
            return None
    family = socket.AF_INET6 if ip.version == 6 else socket.AF_INET
    return int(family), (str(ip), number)


def _udp_socket(family: int) -> Any:
    sock = _xray_sockets.get(family)
    if sock is None:
        import socket

        with _xray_lock:
            sock = _xray_sockets.get(family)
            if sock is None:
                sock = socket.socket(family, socket.SOCK_DGRAM)
                sock.setblocking(False)
                _xray_sockets[family] = sock
    return sock


def _subsegment_name(func: Callable[..., Any]) -> str:
    qualname = str(getattr(func, "__qualname__", None) or "function")
    name = qualname.replace("<locals>.", "")
    return "".join(c for c in name if c.isalnum() or c in _XRAY_NAME_CHARS)[:200]


def trace_xray_subsegment(
    skip_args: bool = True,
) -> Callable[[Callable[_P, _R]], Callable[_P, _R]]:
    """Decorator: each call of the function becomes an X-Ray subsegment.

    Subsegments nest along the calls of decorated and patched functions in
    each thread. Nothing is sent unless the invocation is traced and sampled
    (``_X_AMZN_TRACE_ID``); the daemon is ``AWS_XRAY_DAEMON_ADDRESS`` (Lambda
    sets it). An exception marks the subsegment as a fault and is re-raised.

    The call's arguments are recorded (as ``repr``, in the metadata) only with
    ``skip_args=False``: they may hold secrets. The original fleece recorded
    them by default.

    On an ``async def`` function, the subsegment lasts until the awaited call
    ends. Threads started inside a traced function see it as the parent only
    through `in_current_context`.
    """

    def decorate(func: Callable[_P, _R]) -> Callable[_P, _R]:
        import inspect  # here, not at import: boto3 or asyncio has usually loaded it

        name = _subsegment_name(func)
        if inspect.iscoroutinefunction(func):
            run: Any = func

            @functools.wraps(func)
            async def traced_async(*args: Any, **kwargs: Any) -> Any:
                subsegment = _begin(name, **_arguments(skip_args, args, kwargs))
                if subsegment is None:
                    return await run(*args, **kwargs)
                try:
                    result = await run(*args, **kwargs)
                except BaseException as error:
                    _end(subsegment, error)
                    raise
                _end(subsegment)
                return result

            wrapped: Any = traced_async
            traced_coroutine: Callable[_P, _R] = wrapped
            return traced_coroutine

        @functools.wraps(func)
        def traced(*args: _P.args, **kwargs: _P.kwargs) -> _R:
            subsegment = _begin(name, **_arguments(skip_args, args, kwargs))
            if subsegment is None:
                return func(*args, **kwargs)
            try:
                result = func(*args, **kwargs)
            except BaseException as error:
                _end(subsegment, error)
                raise
            _end(subsegment)
            return result

        return traced

    return decorate


def _arguments(
    skip_args: bool, args: tuple[object, ...], kwargs: Mapping[str, object]
) -> dict[str, Any]:
    """The fields recording a call's arguments (only when asked, and tracing)."""
    if skip_args or _trace_header() is None:
        return {}
    arguments = {"args": [repr(a)[:1000] for a in args]}
    arguments["kwargs"] = [f"{k}={v!r}"[:1000] for k, v in kwargs.items()]
    return {"metadata": {"default": arguments}}


def monkey_patch_botocore_for_xray() -> None:
    """Trace every AWS API call of botocore (and boto3) as an ``aws`` subsegment.

    Records the service, operation, region, request id, retries and HTTP
    status; not the parameters. Calling it again changes nothing.
    """
    try:
        from botocore.client import BaseClient
    except ImportError as error:
        raise _missing("boto3", error) from None
    original: Callable[..., Any] = BaseClient._make_api_call
    if getattr(original, "_fleece_xray", False):
        return

    @functools.wraps(original)
    def traced(client: Any, operation_name: str, api_params: Any) -> Any:
        service = client._service_model.metadata.get("endpointPrefix", "aws")
        subsegment = _begin(service, "aws")
        if subsegment is None:
            return original(client, operation_name, api_params)
        aws: dict[str, Any] = {
            "operation": operation_name,
            "region": client.meta.region_name,
        }
        subsegment.document["aws"] = aws
        try:
            response = original(client, operation_name, api_params)
        except Exception as error:
            _record_aws_response(subsegment, getattr(error, "response", None))
            _end(subsegment, error)
            raise
        _record_aws_response(subsegment, response)
        _end(subsegment)
        return response

    vars(traced)["_fleece_xray"] = True
    BaseClient._make_api_call = traced


def _record_aws_response(subsegment: _Subsegment, response: object) -> None:
    if not isinstance(response, Mapping):
        return
    meta = response.get("ResponseMetadata")
    if not isinstance(meta, Mapping):
        return
    document = subsegment.document
    if meta.get("RequestId"):
        document["aws"]["request_id"] = meta["RequestId"]
    if meta.get("RetryAttempts"):
        document["aws"]["retries"] = meta["RetryAttempts"]
    status = meta.get("HTTPStatusCode")
    if isinstance(status, int):
        document["http"] = {"response": {"status": status}}
        document.update(_status_flags(status))


def monkey_patch_requests_for_xray() -> None:
    """Trace every request made with requests as a ``remote`` subsegment.

    Named after the host; records the method, the URL without its query
    string and the response status, and passes the trace on to the server in
    the ``X-Amzn-Trace-Id`` header. Calling it again changes nothing.
    """
    try:
        from requests import Session
    except ImportError as error:
        raise _missing("requests", error) from None
    original: Callable[..., Any] = Session.request
    if getattr(original, "_fleece_xray", False):
        return

    @functools.wraps(original)
    def traced(session: Any, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        from urllib.parse import urlsplit

        parts = urlsplit(str(url))
        request = {
            "method": str(method).upper(),
            "url": f"{parts.scheme}://{parts.netloc}{parts.path}",
        }
        subsegment = _begin(
            parts.hostname or "remote", "remote", http={"request": request}
        )
        if subsegment is None:
            return original(session, method, url, *args, **kwargs)
        document = subsegment.document
        if len(args) < 3:  # headers not given positionally
            headers = dict(kwargs.get("headers") or {})
            headers["X-Amzn-Trace-Id"] = (
                f"Root={document['trace_id']};Parent={document['id']};Sampled=1"
            )
            kwargs["headers"] = headers
        try:
            response = original(session, method, url, *args, **kwargs)
        except Exception as error:
            _end(subsegment, error)
            raise
        status = int(response.status_code)
        document["http"]["response"] = {"status": status}
        length = response.headers.get("Content-Length")
        if length is not None and length.isdigit():
            document["http"]["response"]["content_length"] = int(length)
        document.update(_status_flags(status))
        _end(subsegment)
        return response

    vars(traced)["_fleece_xray"] = True
    patched: Any = traced
    Session.request = patched  # type: ignore[method-assign]


class _XRayNamespace:
    """X-Ray tracing, as ``from fleece_runtime import xray`` (was ``fleece.xray``)."""

    __slots__ = ()
    trace_xray_subsegment = staticmethod(trace_xray_subsegment)
    in_current_context = staticmethod(in_current_context)
    monkey_patch_botocore_for_xray = staticmethod(monkey_patch_botocore_for_xray)
    monkey_patch_requests_for_xray = staticmethod(monkey_patch_requests_for_xray)


xray = _XRayNamespace()
