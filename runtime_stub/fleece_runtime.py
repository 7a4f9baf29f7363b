"""fleece_runtime: what a Python function on AWS Lambda needs at run time.

One file, standard library only at import time: boto3, requests and the
other optional libraries are imported by the functions that use them, and
nothing runs at import. Migrating from the original fleece package is one
import line::

    from fleece_runtime import boto3, log, requests, xray

    log.setup_root_logger()
    logger = log.get_logger(__name__)


    @log.inject_request_ids_into_environment
    def handler(event, context):
        logger.info("order_saved", order_id=7)
        s3 = boto3.client("s3", timeout=5)
        requests.get("https://example.com", timeout=3, retries=2)

Contents, in the order of the file. Each section lists its public names;
the module names of fleece 1.x (``log``, ``xray``, ``profiling``, ``boto3``,
``requests``, ``raxauth``) are namespace objects grouping a section's names,
and names that collide with nothing are also importable flat
(``from fleece_runtime import get_logger``).

Shared plumbing: the JSON encoder, the current invocation and its deadline
    JsonEncoder, json_dumps, lambda_invocation, current_lambda_context,
    Deadline, current_deadline, in_current_context
Logging: JSON lines, request ids, bound fields, classification, retries
    Classification, JsonFormatter, Logger, get_logger, getLogger,
    setup_root_logger, bind, unbind, inject_request_ids_into_environment,
    RetryHandler, logme, initial_trace_and_context_binds, log
X-Ray: subsegments sent to the daemon over UDP, without aws-xray-sdk
    trace_xray_subsegment, monkey_patch_botocore_for_xray,
    monkey_patch_requests_for_xray, get_trace_id, xray
Profiling: a sampled cProfile of a handler, logged as one event
    profile_handler, profiling
boto3: clients and resources with timeouts
    boto3
requests: timeouts, retries, one pooled session for module-level calls
    requests
Rackspace identity: checking a Rackspace token
    raxauth

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
    from typing import IO, Any, ParamSpec, Self, TypeVar

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

    class _Session(_requests_lib.Session):
        """What `requests.Session` is to a type checker (built at first use)."""

        timeout: _Timeout | None

        def __init__(
            self, timeout: _Timeout | None = None, retries: Any = None
        ) -> None: ...


# Grouped by section, in the order of the file (see the docstring).
__all__ = [  # noqa: RUF022
    # Shared plumbing
    "JsonEncoder",
    "json_dumps",
    "lambda_invocation",
    "current_lambda_context",
    "Deadline",
    "current_deadline",
    "in_current_context",
    # Logging
    "Classification",
    "JsonFormatter",
    "Logger",
    "get_logger",
    "getLogger",
    "setup_root_logger",
    "bind",
    "unbind",
    "inject_request_ids_into_environment",
    "RetryHandler",
    "logme",
    "initial_trace_and_context_binds",
    "log",
    # X-Ray
    "trace_xray_subsegment",
    "monkey_patch_botocore_for_xray",
    "monkey_patch_requests_for_xray",
    "get_trace_id",
    "xray",
    # Profiling
    "profile_handler",
    "profiling",
    # boto3
    "boto3",
    # requests
    "requests",
    # Rackspace identity
    "raxauth",
]


def _missing(package: str, error: ImportError) -> ImportError:
    """The error raised when an optional dependency is not installed."""
    missing = ImportError(
        f"fleece_runtime needs the package {package!r} for this call: "
        f"add it to src/requirements.txt (pip install {package})"
    )
    missing.__cause__ = error
    return missing


def _forward(package: str, name: str) -> Any:
    """The attribute ``name`` of the optional ``package`` (or its submodule)."""
    if name.startswith("_"):
        raise AttributeError(name)
    import importlib

    try:
        module = importlib.import_module(package)
    except ImportError as error:
        raise _missing(package, error) from None
    try:
        return getattr(module, name)
    except AttributeError:
        pass
    try:
        return importlib.import_module(f"{package}.{name}")
    except ModuleNotFoundError:
        raise AttributeError(f"{package} has no attribute {name!r}") from None


# ---------------------------------------------------------------------------
# Shared plumbing: the JSON encoder, the current invocation and its deadline
# ---------------------------------------------------------------------------

_DEADLINE_MARGIN = 0.5

# The Lambda context of the invocation running in this thread or task.
_lambda_context: contextvars.ContextVar[Any] = contextvars.ContextVar(
    "fleece_lambda_context", default=None
)


class JsonEncoder(json.JSONEncoder):
    """A `json.JSONEncoder` for the values a Lambda function handles.

    Besides what `json` encodes itself, it writes:

    - dataclass instances as an object of their fields;
    - ``datetime``, ``date`` and ``time`` in ISO 8601 (``isoformat()``);
    - enum members as their value;
    - ``Decimal`` (DynamoDB's numbers) as an integer when integral, else as a
      float; NaN and infinities as strings;
    - sets and frozensets as lists (sorted when their items can be);
    - ``bytes``, ``bytearray`` and ``memoryview`` as base64 text;
    - ``UUID`` as its string;
    - exceptions as ``{"type": "ValueError", "message": "..."}``;
    - other mappings as objects;
    - objects with ``to_json()`` (JSON text, or a value to encode),
      ``model_dump()`` (pydantic 2) or ``dict()`` (pydantic 1) as what those
      return.

    Anything else is given to ``fallback`` (the logger passes ``str``); with
    no fallback it raises ``TypeError``, as `json` does. The other keyword
    arguments are `json.JSONEncoder`'s. Values `json` encodes natively never
    reach this code, so the common types cost nothing extra.
    """

    def __init__(
        self, *, fallback: Callable[[Any], object] | None = None, **options: Any
    ) -> None:
        super().__init__(**options)
        self.fallback = fallback

    def default(self, o: Any) -> object:
        """``o`` as a value `json` can encode (see the class)."""
        value = _jsonable(o)
        if value is not _UNKNOWN:
            return value
        if self.fallback is not None:
            return self.fallback(o)
        raise TypeError(f"Object of type {type(o).__name__} is not JSON serializable")


def json_dumps(value: object) -> str:
    """``value`` as compact JSON text through `JsonEncoder`.

    No spaces, non-ASCII characters written as they are, and NaN or infinite
    floats refused with ``ValueError`` (they are not JSON). A value the
    encoder does not know raises ``TypeError``.
    """
    return _compact_encoder().encode(value)


def lambda_invocation(context: object) -> _InvocationScope:
    """A context manager in which ``context`` is the current Lambda context.

    `inject_request_ids_into_environment` uses it around every call of the
    handler it decorates; use it yourself where no decorated handler runs
    (a test, a handler that is not decorated)::

        with lambda_invocation(context):
            orders.sync()   # current_lambda_context() is context here

    The context belongs to the thread or asyncio task that entered the block
    (and to threads started through `in_current_context`), and is cleared
    when the block ends, even on an exception.
    """
    return _InvocationScope(context)


def current_lambda_context() -> Any:
    """The Lambda context of the invocation running now, or None outside one.

    Any code called during an invocation may read it without having it passed
    down: the function name, the request id, ``get_remaining_time_in_millis()``.
    """
    return _lambda_context.get()


class Deadline:
    """The time after which no new work should start: a retry, a wait, a call.

    ``Deadline(seconds)`` ends ``seconds`` from now; `Deadline.from_context`
    ends ``margin`` seconds before a Lambda context's remaining time runs out.
    Code that waits or retries asks `remaining` (seconds left, never below 0),
    `expired`, or `timeout` for the socket timeout of its next attempt.

    ``clock`` returns the time in seconds (``time.monotonic`` by default);
    tests pass their own to move time without sleeping.
    """

    __slots__ = ("_clock", "_ends")

    def __init__(
        self, seconds: float, *, clock: Callable[[], float] | None = None
    ) -> None:
        if isinstance(seconds, bool) or not isinstance(seconds, int | float):
            raise TypeError(f"seconds must be a number, not {seconds!r}")
        self._clock = clock or time.monotonic
        self._ends = self._clock() + seconds

    @classmethod
    def from_context(
        cls,
        context: Any,
        *,
        margin: float = _DEADLINE_MARGIN,
        clock: Callable[[], float] | None = None,
    ) -> Deadline:
        """``margin`` seconds (0.5 by default) before ``context``'s time runs out.

        ``context`` is a Lambda context: its ``get_remaining_time_in_millis()``
        is read once, now.
        """
        if margin < 0:
            raise ValueError(f"margin must be >= 0 seconds, not {margin!r}")
        remaining = context.get_remaining_time_in_millis() / 1000
        return cls(remaining - margin, clock=clock)

    def remaining(self) -> float:
        """Seconds left before the deadline; 0.0 once it has passed."""
        return max(0.0, self._ends - self._clock())

    @property
    def expired(self) -> bool:
        """True once the deadline has passed."""
        return self._clock() >= self._ends

    def timeout(self, limit: float | None = None) -> float:
        """What the next attempt may take: ``limit`` seconds, less if the deadline is sooner."""
        left = self.remaining()
        return left if limit is None else min(limit, left)

    def __repr__(self) -> str:
        return f"<Deadline in {self._ends - self._clock():.3f}s>"


def current_deadline(
    total: float | None = None,
    *,
    margin: float = _DEADLINE_MARGIN,
    clock: Callable[[], float] | None = None,
) -> Deadline | None:
    """The deadline of work started now, or None when nothing bounds it.

    During an invocation (see `lambda_invocation`) whose context tells its
    remaining time, the deadline is ``margin`` seconds before that time runs
    out. With ``total`` (seconds from now), it is that, or the invocation's
    deadline when sooner. With neither, None.
    """
    context = _lambda_context.get()
    remaining = getattr(context, "get_remaining_time_in_millis", None)
    by_context = (
        Deadline.from_context(context, margin=margin, clock=clock)
        if callable(remaining)
        else None
    )
    by_total = None if total is None else Deadline(total, clock=clock)
    if by_context is None or by_total is None:
        return by_context or by_total
    return by_context if by_context._ends <= by_total._ends else by_total


def in_current_context(func: Callable[_P, _R]) -> Callable[_P, _R]:
    """``func``, run in the context of the caller of this: invocation, log fields, trace.

    Threads, and the workers of a ``ThreadPoolExecutor``, start with an empty
    context (Python's rule): their log lines would lack the request ids and
    bound fields, `current_lambda_context` would be None, and their X-Ray
    subsegments would hang from the Lambda segment instead of the traced
    function that started them. Wrap the function where you hand it over::

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


class _Unknown:
    """The marker of a value `JsonEncoder` does not know."""


_UNKNOWN = _Unknown()


def _jsonable(value: object) -> object:
    """``value`` as something `json` encodes, or `_UNKNOWN`.

    Types of modules that are not loaded cannot be instances, so their
    modules are looked up, never imported: importing ``decimal`` or ``uuid``
    for a check would cost every cold start.
    """
    modules = sys.modules
    datetime = modules.get("datetime")
    if datetime is not None and isinstance(value, (datetime.date, datetime.time)):
        return value.isoformat()
    decimal = modules.get("decimal")
    if decimal is not None and isinstance(value, decimal.Decimal):
        if not value.is_finite():
            return str(value)
        integral = value.to_integral_value()
        return int(integral) if value == integral else float(value)
    if isinstance(value, enum.Enum):
        return value.value
    uuid = modules.get("uuid")
    if uuid is not None and isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, (set, frozenset)):
        try:
            return sorted(value)
        except TypeError:
            return sorted(value, key=repr)
    if isinstance(value, (bytes, bytearray, memoryview)):
        import binascii

        return binascii.b2a_base64(value, newline=False).decode("ascii")
    dataclasses = modules.get("dataclasses")
    if (
        dataclasses is not None
        and dataclasses.is_dataclass(value)
        and not isinstance(value, type)
    ):
        return {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
    if isinstance(value, BaseException):
        return {"type": type(value).__name__, "message": str(value)}
    if isinstance(value, Mapping):
        return dict(value)
    return _converted(value)


def _converted(value: object) -> object:
    """What an object's own conversion method gives, or `_UNKNOWN`."""
    to_json = getattr(value, "to_json", None)
    if callable(to_json):
        converted = to_json()
        if isinstance(converted, str):
            try:
                return json.loads(converted)
            except ValueError:
                return converted
        return converted
    model_dump = getattr(value, "model_dump", None)
    if callable(model_dump):
        try:
            return model_dump(mode="json")
        except TypeError:  # a model_dump() that is not pydantic's
            return model_dump()
    as_dict = getattr(value, "dict", None)
    if callable(as_dict):
        return as_dict()
    isoformat = getattr(value, "isoformat", None)
    if callable(isoformat):  # date types of other libraries
        return isoformat()
    return _UNKNOWN


@functools.cache
def _compact_encoder() -> JsonEncoder:
    return JsonEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)


class _InvocationScope:
    """The context manager of `lambda_invocation`."""

    __slots__ = ("_token", "context")

    def __init__(self, context: object) -> None:
        self.context = context

    def __enter__(self) -> Any:
        self._token = _lambda_context.set(self.context)
        return self.context

    def __exit__(self, *exc: object) -> None:
        _lambda_context.reset(self._token)


# ---------------------------------------------------------------------------
# Logging: JSON lines, request ids, bound fields, classification, retries
# ---------------------------------------------------------------------------

_EVENT_ATTR = "fleece_event"
_REDACTED = "[REDACTED]"
_NO_FIELDS: Mapping[str, Any] = MappingProxyType({})
# Kept when an event is redacted: its classification (the request ids and
# cold_start are kept too: they say which call, not what data).
_KEPT_FIELDS = frozenset({"classification"})
_SCHEMAS = ("default", "1.x")
# Where `setup_root_logger` looks for the level, first to last: the application
# log level of Lambda's logging configuration, then the service's own setting.
_LEVEL_VARIABLES = ("AWS_LAMBDA_LOG_LEVEL", "LOG_LEVEL")
# JSON leaves these raw, but str.splitlines() (and some log readers) break
# lines at them; every other non-ASCII character stays readable.
_LINE_BREAKS = str.maketrans(
    {"\u2028": "\\u2028", "\u2029": "\\u2029", "\x85": "\\u0085"}
)

# The fields bound with `bind`, and the request ids and cold_start of the
# current invocation. The mappings are never mutated, only replaced, so every
# thread and task sees a consistent snapshot.
_context: contextvars.ContextVar[Mapping[str, Any]] = contextvars.ContextVar(
    "fleece_log_context"
)
_request_ids: contextvars.ContextVar[Mapping[str, Any]] = contextvars.ContextVar(
    "fleece_request_ids"
)
_cold_start = True
# The formatter of `setup_root_logger`: it renders the line of every `Logger`
# call, the line every handler receives as the record's message.
_line_formatter: JsonFormatter | None = None


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
    """Remove bound fields from the current invocation's log lines.

    Keys that are not bound are ignored.
    """
    current = _context.get(_NO_FIELDS)
    _context.set({key: value for key, value in current.items() if key not in keys})


class JsonFormatter(logging.Formatter):
    """Formats a record as one JSON object on a single line.

    With ``schema="default"``, fields in order: ``timestamp`` (ISO 8601 UTC,
    milliseconds), ``level`` (``INFO``), ``logger``, ``event`` (the message),
    the invocation's ``lambda_request_id``, ``api_request_id`` and
    ``cold_start``, the fields bound with `bind`, the record's ``extra=`` and
    keyword fields, then ``exception`` and ``stack`` when present. Values are
    encoded by `JsonEncoder`; those it does not know are written as ``str()``.

    With ``schema="1.x"``, the line of fleece 1.x, for the alarms and queries
    written against it: keys sorted, ``level`` in lower case (``info``,
    ``warning``, ``error``, ``critical``; ``exception()`` writes ``error``),
    the request ids as ``api_request_id`` and ``lambda.request_id``, no
    ``cold_start``, ``timestamp`` with microseconds, non-ASCII characters
    escaped, and values JSON cannot hold written as their ``repr()``.

    ``service`` names the service on every line, after ``event`` (in the
    sorted keys with ``schema="1.x"``); by default it is the ``SERVICE_NAME``
    environment variable as it is when the formatter is made, and a line has
    no ``service`` when that is unset or empty (or ``service=""``).

    Either way a line is one line for every reader: besides the escapes of
    JSON, U+2028, U+2029 and U+0085 are escaped. A field named like a core
    field (``timestamp``, ``level``, ``logger``, ``event``, and ``service``
    when set) never replaces it.

    ``redact_above`` (a `Classification` or its name): for events whose
    ``classification`` is above this level, or is not a level at all, every
    field (keyword, ``extra=`` and bound with `bind`) except the request ids,
    ``cold_start`` and ``classification`` becomes ``"[REDACTED]"``, and the
    event is written without its %-arguments. The event text itself is kept:
    put sensitive values in fields or %-arguments, never in an f-string.
    """

    def __init__(
        self,
        *,
        redact_above: Classification | str | None = None,
        schema: str = "default",
        service: str | None = None,
    ) -> None:
        super().__init__()
        level = None if redact_above is None else _classification(redact_above)
        if redact_above is not None and level is None:
            raise ValueError(
                f"redact_above must be a Classification or the name of one, "
                f"not {redact_above!r}"
            )
        if schema not in _SCHEMAS:
            raise ValueError(f"schema must be 'default' or '1.x', not {schema!r}")
        self.redact_above = level
        self.schema = schema
        self.service = os.environ.get("SERVICE_NAME") if service is None else service
        self._standard = _record_attributes()
        # A record with more attributes than a bare one carries fields.
        self._standard_count = len(self._standard) - 3
        self._second: tuple[int, str] = (-1, "")
        if schema == "1.x":  # structlog's JSONRenderer(sort_keys=True)
            self._encode = json.JSONEncoder(default=repr, sort_keys=True).encode
        else:
            self._encode = JsonEncoder(
                fallback=str, ensure_ascii=False, check_circular=False
            ).encode

    def format(self, record: logging.LogRecord) -> str:
        """The JSON line for ``record``, without the trailing newline."""
        event: _Event | None = record.__dict__.get(_EVENT_ATTR)
        if (
            event is not None
            and event.formatter is self
            and record.msg is event.line
            and (len(record.__dict__) == event.size or not self._extra(record))
        ):
            return event.line  # rendered by this formatter when it was logged
        if event is not None:
            return self._render(record, event)
        return self._render(
            record,
            _Event(
                _request_ids.get(_NO_FIELDS),
                _context.get(_NO_FIELDS),
                self._extra(record),
                record.getMessage(),
                str(record.msg) if record.args else None,
                self._exception(record),
                self.formatStack(record.stack_info) if record.stack_info else None,
            ),
        )

    def _attach(self, record: logging.LogRecord, fields: dict[str, Any]) -> None:
        """Render the record of a `Logger` call now, as its message.

        Every handler then receives the whole line as the record's message
        (as in fleece 1.x), whatever its formatter; the traceback and stack
        are inside the line, so they are taken off the record.
        """
        try:
            text = record.getMessage()
            template = str(record.msg) if record.args else None
        except Exception:  # noqa: BLE001 (%-arguments that do not fit: keep both)
            template = repr(record.msg)
            text = f"{template} % {record.args!r}"
        exc_info = record.exc_info
        event = _Event(
            _request_ids.get(_NO_FIELDS),
            _context.get(_NO_FIELDS),
            fields,
            text,
            template,
            self.formatException(exc_info) if exc_info and exc_info[0] else None,
            record.stack_info,
        )
        line = self._render(record, event)
        record.msg, record.args = line, ()
        record.exc_info = record.exc_text = record.stack_info = None
        event.line, event.formatter = line, self
        record.__dict__[_EVENT_ATTR] = event
        event.size = len(record.__dict__)

    def _render(self, record: logging.LogRecord, event: _Event) -> str:
        bound, fields, text = event.bound, event.fields, event.text
        if event.formatter is not None:  # attributes set since it was logged
            extra = self._extra(record)
            if extra:
                fields = {**extra, **fields}
        classification: object = None
        if "classification" in fields or "classification" in bound:
            value = fields.get("classification")
            classification, redact = self._classify(
                bound.get("classification") if value is None else value
            )
            if redact:
                if event.template is not None:
                    text = event.template  # without its sensitive arguments
                bound = _redacted(bound, _KEPT_FIELDS)
                fields = _redacted(fields, _KEPT_FIELDS)
        if self.schema == "1.x":
            line = self._line_1x(record, event, bound, fields, text)
        else:
            timestamp = self._timestamp(record)
            line = {
                "timestamp": timestamp,
                "level": record.levelname,
                "logger": record.name,
                "event": text,
            }
            if self.service:
                line["service"] = self.service
            if event.ids:
                line.update(event.ids)
            if bound:
                line.update(bound)
            if fields:
                line.update(fields)
            if bound or fields:  # a field named like a core field must not replace it
                line["timestamp"] = timestamp
                line["level"] = record.levelname
                line["logger"] = record.name
                line["event"] = text
                if self.service:
                    line["service"] = self.service
        if classification is not None:
            line["classification"] = classification
        if event.exception:
            line["exception"] = event.exception
        if event.stack:
            line["stack"] = event.stack
        try:
            encoded = self._encode(line)
        except Exception:  # noqa: BLE001 (a circular value, a failing to_json())
            encoded = self._encode({key: _plain(v) for key, v in line.items()})
        if "\u2028" in encoded or "\u2029" in encoded or "\x85" in encoded:
            encoded = encoded.translate(_LINE_BREAKS)
        return encoded

    def _line_1x(
        self,
        record: logging.LogRecord,
        event: _Event,
        bound: Mapping[str, Any],
        fields: Mapping[str, Any],
        text: str,
    ) -> dict[str, Any]:
        """The fields of fleece 1.x's line (the encoder sorts them)."""
        from datetime import UTC, datetime

        line = {**bound, **fields, "event": text}
        ids = event.ids
        if "api_request_id" in ids:
            line["api_request_id"] = ids["api_request_id"]
        if "lambda_request_id" in ids:
            line["lambda.request_id"] = ids["lambda_request_id"]
        line["level"] = record.levelname.lower()
        line["logger"] = record.name
        if self.service:
            line["service"] = self.service
        created = datetime.fromtimestamp(record.created, UTC)
        line["timestamp"] = created.isoformat().replace("+00:00", "Z")
        return line

    def _classify(self, value: object) -> tuple[object, bool]:
        """(classification as written, whether to redact) of a classified event."""
        if value is None:
            return None, False
        level = _classification(value)
        if level is None:  # not a level: fail closed
            return value, self.redact_above is not None
        return level.name, self.redact_above is not None and level > self.redact_above

    def _extra(self, record: logging.LogRecord) -> dict[str, Any]:
        """The attributes of ``record`` that a bare record lacks: its fields."""
        attributes = record.__dict__
        if len(attributes) <= self._standard_count:
            return {}
        standard = self._standard
        return {k: v for k, v in attributes.items() if k not in standard}

    def _exception(self, record: logging.LogRecord) -> str | None:
        if record.exc_info and record.exc_info[0] and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        return record.exc_text or None

    def _timestamp(self, record: logging.LogRecord) -> str:
        second = int(record.created)
        cached_second, prefix = self._second
        if cached_second != second:
            prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
            self._second = (second, prefix)
        return f"{prefix}.{int(record.msecs):03d}Z"


class Logger:
    """A logger whose calls take keyword fields: ``logger.info("saved", order_id=7)``.

    It wraps a standard `logging.Logger` (``.stdlib``): levels, handlers,
    filters, ``propagate``, ``exc_info=``, ``stack_info=`` and ``stacklevel=``
    work as usual, and the handler and level methods of `logging.Logger` are
    here too, as fleece 1.x's logger had them. The keyword fields, and those
    of ``extra=`` (any key, even "name"), travel with the record.

    Each call is rendered once, when it is made, by the `JsonFormatter` of
    `setup_root_logger` (a default one before that): every handler receives
    that JSON line as the record's message, as in fleece 1.x, so a handler
    with any formatter (a CloudWatch handler, a file) writes the whole line.
    The traceback of ``exc_info=`` is inside the line (``exception``), not
    on the record.
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

    @property
    def level(self) -> int:
        """The level set on the wrapped logger (0: its parent's applies)."""
        return self.stdlib.level

    @property
    def handlers(self) -> list[logging.Handler]:
        """The handlers of the wrapped logger."""
        return self.stdlib.handlers

    @property
    def filters(self) -> list[Any]:
        """The filters of the wrapped logger."""
        return self.stdlib.filters

    @property
    def parent(self) -> logging.Logger | None:
        """The standard logger above the wrapped one."""
        return self.stdlib.parent

    @property
    def propagate(self) -> bool:
        """Whether records also go to the handlers of the parent loggers."""
        return self.stdlib.propagate

    @propagate.setter
    def propagate(self, value: bool) -> None:
        self.stdlib.propagate = value

    @property
    def disabled(self) -> bool:
        """Whether the wrapped logger drops every record."""
        return self.stdlib.disabled

    @disabled.setter
    def disabled(self, value: bool) -> None:
        self.stdlib.disabled = value

    def setLevel(self, level: int | str) -> None:
        """Set the level of the wrapped logger."""
        self.stdlib.setLevel(level)

    def getEffectiveLevel(self) -> int:
        """The level that applies: this logger's, or the nearest parent's."""
        return self.stdlib.getEffectiveLevel()

    def isEnabledFor(self, level: int) -> bool:
        """True when a record of ``level`` would be processed."""
        return self.stdlib.isEnabledFor(level)

    def addHandler(self, handler: logging.Handler) -> None:
        """Add ``handler`` to the wrapped logger."""
        self.stdlib.addHandler(handler)

    def removeHandler(self, handler: logging.Handler) -> None:
        """Remove ``handler`` from the wrapped logger."""
        self.stdlib.removeHandler(handler)

    def hasHandlers(self) -> bool:
        """True when this logger or a parent it propagates to has handlers."""
        return self.stdlib.hasHandlers()

    def addFilter(self, filter: Any) -> None:
        """Add a filter to the wrapped logger."""
        self.stdlib.addFilter(filter)

    def removeFilter(self, filter: Any) -> None:
        """Remove a filter from the wrapped logger."""
        self.stdlib.removeFilter(filter)

    def getChild(self, suffix: str) -> Logger:
        """The `Logger` named ``<this name>.<suffix>``."""
        return Logger(self.stdlib.getChild(suffix))

    def bind(self, **fields: Any) -> Logger:
        """Bind ``fields`` for the current invocation (see `bind`); returns self."""
        bind(**fields)
        return self

    def unbind(self, *keys: str) -> Logger:
        """Remove bound fields (see `unbind`); returns self."""
        unbind(*keys)
        return self

    def try_unbind(self, *keys: str) -> Logger:
        """The same as `unbind`, which never fails on a missing key; returns self."""
        unbind(*keys)
        return self

    def new(self, **fields: Any) -> Logger:
        """Replace the fields bound for the current invocation with ``fields``.

        The request ids and ``cold_start`` stay. Returns self.
        """
        _context.set(dict(fields))
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
        """Log ``event`` at WARNING with keyword ``fields`` (also ``warn``)."""
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

    warn = warning

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
        """Log ``event`` at CRITICAL with keyword ``fields`` (also ``fatal``)."""
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

    fatal = critical

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
        # What the stdlib's Logger._log does, with the line rendered before
        # the handlers see the record. ``extra`` joins the keyword fields
        # rather than the record's attributes, where a key such as "name"
        # would raise KeyError.
        if extra:
            fields = {**extra, **fields}
        stdlib = self.stdlib
        try:
            # +2: this method and the public one sit between the caller and here.
            path, line, function, stack = stdlib.findCaller(stack_info, stacklevel + 2)
        except ValueError:
            path, line, function, stack = (
                "(unknown file)",
                0,
                "(unknown function)",
                None,
            )
        info: Any = exc_info
        if info:
            if isinstance(info, BaseException):
                info = (type(info), info, info.__traceback__)
            elif not isinstance(info, tuple):
                info = sys.exc_info()
        record = stdlib.makeRecord(
            stdlib.name, level, path, line, event, args, info, function, None, stack
        )
        formatter = _line_formatter or _default_line_formatter()
        formatter._attach(record, fields)
        stdlib.handle(record)


def get_logger(
    name: str | None = None,
    level: int | str | None = None,
    stream: IO[str] | None = None,
    clobber_root_handler: bool = True,
    logger_factory: object = None,
    wrapper_class: object = None,
) -> Logger:
    """The `Logger` for ``name`` (usually ``__name__``); the root logger for None.

    ``level`` sets the level of that logger. The other arguments are fleece
    1.x's: ``stream`` and ``clobber_root_handler`` change nothing, as they
    never took effect there either (send the lines elsewhere with
    `setup_root_logger`'s ``stream``); ``logger_factory`` and
    ``wrapper_class`` configured structlog, which fleece_runtime does not
    use: passing one raises ``TypeError``.
    """
    _refuse_structlog(logger_factory=logger_factory, wrapper_class=wrapper_class)
    logger = logging.getLogger(name)
    if level is not None:
        logger.setLevel(level)
    return Logger(logger)


getLogger = get_logger  # the stdlib spelling, kept for migration


def setup_root_logger(
    level: int | str = logging.INFO,
    stream: IO[str] | None = None,
    logger_factory: object = None,
    *,
    redact_above: Classification | str | None = None,
    schema: str = "default",
) -> logging.Handler:
    """Send every log record of the process to ``stream`` as JSON lines.

    Removes the root logger's handlers (on Lambda, the runtime's own, which
    would wrap each line in a JSON object of its own when the function's log
    format is JSON) and installs a single stream handler with a
    `JsonFormatter`, so records of plain `logging` loggers and of libraries
    come out as JSON too. ``stream`` defaults to the current ``sys.stdout``.
    Returns the handler.

    The root logger's level is the first of: ``AWS_LAMBDA_LOG_LEVEL`` (the
    application log level of Lambda's logging configuration; ``TRACE`` is
    DEBUG, ``WARN`` WARNING, ``FATAL`` CRITICAL), ``LOG_LEVEL``, then
    ``level``. Level names are read in any case; a variable that names no
    level is skipped, and a WARNING line says so. Every line carries
    ``service`` when ``SERVICE_NAME`` is set (see `JsonFormatter`).

    ``redact_above`` and ``schema`` are the formatter's: ``schema="1.x"``
    writes fleece 1.x's line (see `JsonFormatter`). This formatter also
    renders the line that every handler receives from a `Logger` call.
    ``logger_factory`` (fleece 1.x's, for structlog) must stay None.
    """
    global _line_formatter
    _refuse_structlog(logger_factory=logger_factory)
    formatter = JsonFormatter(redact_above=redact_above, schema=schema)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    handler = logging.StreamHandler(sys.stdout if stream is None else stream)
    handler.setFormatter(formatter)
    root.addHandler(handler)
    _line_formatter = formatter
    chosen, ignored = _configured_level(level)
    root.setLevel(chosen)
    for variable, value in ignored:
        logging.getLogger(__name__).warning(
            "log_level_ignored",
            extra={
                "variable": variable,
                "value": value,
                "used": logging.getLevelName(root.level),
            },
        )
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
    previous invocation's ids or fields. The context is also the current one
    for the invocation (`current_lambda_context`, `current_deadline`).

    An ``async def`` handler gets all this while its coroutine runs.
    """
    import inspect  # here, not at import: boto3 or asyncio has usually loaded it

    if inspect.iscoroutinefunction(handler):
        run: Any = handler

        @functools.wraps(handler)
        async def with_request_ids_async(*args: Any, **kwargs: Any) -> Any:
            started = _start_invocation(args, kwargs)
            try:
                return await run(*args, **kwargs)
            finally:
                _end_invocation(started)

        wrapped: Any = with_request_ids_async
        async_handler: Callable[_P, _R] = wrapped
        return async_handler

    @functools.wraps(handler)
    def with_request_ids(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        started = _start_invocation(args, kwargs)
        try:
            return handler(*args, **kwargs)
        finally:
            _end_invocation(started)

    return with_request_ids


def logme(
    level: int = logging.DEBUG, logger: Logger | logging.Logger | None = None
) -> Callable[[Callable[_P, _R]], Callable[_P, _R]]:
    """Decorator: log each call of a function, entering and leaving it.

    ``@logme()`` logs ``Entering <name>`` before each call and ``Exiting
    <name>`` after it, with the return value as the field
    ``<name>_response``, at ``level`` (DEBUG), through ``logger`` (a `Logger`
    or a standard logger; the root logger by default). The return value is
    logged as it is: do not decorate a function that returns secrets.
    An ``async def`` function is logged around its awaited call.
    """
    import inspect

    target = logger if isinstance(logger, Logger) else Logger(logger or logging.root)

    def decorate(func: Callable[_P, _R]) -> Callable[_P, _R]:
        name = str(getattr(func, "__name__", "function"))
        response_field = f"{name}_response"
        if inspect.iscoroutinefunction(func):
            run: Any = func

            @functools.wraps(func)
            async def logged_async(*args: Any, **kwargs: Any) -> Any:
                target.log(level, "Entering %s", name, stacklevel=2)
                response = await run(*args, **kwargs)
                fields: dict[str, Any] = {response_field: response}
                target.log(level, "Exiting %s", name, stacklevel=2, **fields)
                return response

            wrapped: Any = logged_async
            logged_coroutine: Callable[_P, _R] = wrapped
            return logged_coroutine

        @functools.wraps(func)
        def logged(*args: _P.args, **kwargs: _P.kwargs) -> _R:
            target.log(level, "Entering %s", name, stacklevel=2)
            response = func(*args, **kwargs)
            fields: dict[str, Any] = {response_field: response}
            target.log(level, "Exiting %s", name, stacklevel=2, **fields)
            return response

        return logged

    return decorate


def initial_trace_and_context_binds(
    logger: Logger | logging.Logger, trace_id: object, lambda_context: Any
) -> Logger:
    """Bind ``trace_id`` and a ``lambda_context`` field describing the context.

    As `Logger.new`: these replace the fields bound so far in the current
    invocation. ``lambda_context`` holds the context's ``function_name``,
    ``function_version``, ``invoked_function_arn``, ``memory_limit_in_mb``,
    ``aws_request_id``, ``log_group_name`` and ``log_stream_name``. Returns the
    logger (a `Logger`).
    """
    target = logger if isinstance(logger, Logger) else Logger(logger)
    described = {
        name: getattr(lambda_context, name, None)
        for name in (
            "function_name",
            "function_version",
            "invoked_function_arn",
            "memory_limit_in_mb",
            "aws_request_id",
            "log_group_name",
            "log_stream_name",
        )
    }
    return target.new(trace_id=trace_id, lambda_context=described)


class _Event:
    """What a record logs, and, for a `Logger` call, the line rendered then."""

    __slots__ = (
        "bound",
        "exception",
        "fields",
        "formatter",
        "ids",
        "line",
        "size",
        "stack",
        "template",
        "text",
    )

    def __init__(
        self,
        ids: Mapping[str, Any],
        bound: Mapping[str, Any],
        fields: Mapping[str, Any],
        text: str,
        template: str | None,
        exception: str | None,
        stack: str | None,
    ) -> None:
        self.ids = ids  # request ids and cold_start of the invocation
        self.bound = bound  # fields bound with bind()
        self.fields = fields  # keyword and extra= fields
        self.text = text  # the message, %-arguments applied
        self.template = template  # the message without them, if it had any
        self.exception = exception
        self.stack = stack
        self.line = ""
        self.formatter: JsonFormatter | None = None  # set once rendered
        self.size = 0  # attributes of the record once rendered

    def __reduce__(self) -> tuple[Any, ...]:
        # A record sent to another process (SocketHandler, a multiprocessing
        # queue) carries what any JsonFormatter there needs to render it.
        return (
            _Event,
            (
                dict(self.ids),
                dict(self.bound),
                self.fields,
                self.text,
                self.template,
                self.exception,
                self.stack,
            ),
        )


def _record_attributes() -> frozenset[str]:
    """The attributes of a bare LogRecord, plus the 3 that formatting may add."""
    record = logging.LogRecord("", 0, "", 0, "", (), None)
    return frozenset(record.__dict__) | {"message", "asctime", _EVENT_ATTR}


def _redacted(fields: Mapping[str, Any], kept: frozenset[str]) -> dict[str, Any]:
    return {key: value if key in kept else _REDACTED for key, value in fields.items()}


def _plain(value: object) -> object:
    """``value`` if JSON holds it as it is, else its ``repr()``."""
    if value is None or isinstance(value, str | int | float):
        return value
    try:
        return repr(value)
    except Exception:  # noqa: BLE001
        return f"<{type(value).__name__} object>"


def _classification(value: object) -> Classification | None:
    if isinstance(value, Classification):
        return value
    if isinstance(value, str):
        return Classification.__members__.get(value.upper())
    return None


@functools.cache
def _default_line_formatter() -> JsonFormatter:
    return JsonFormatter()


def _refuse_structlog(**arguments: object) -> None:
    for name, value in arguments.items():
        if value is not None:
            raise TypeError(
                f"{name}= configured structlog in fleece 1.x; fleece_runtime does "
                f"not use structlog: remove the argument"
            )


def _configured_level(
    level: int | str,
) -> tuple[int | str, list[tuple[str, str]]]:
    """The root level the environment asks for, else ``level``; the values skipped."""
    ignored: list[tuple[str, str]] = []
    names = logging.getLevelNamesMapping()  # WARN and FATAL too, as Lambda's
    names["TRACE"] = logging.DEBUG  # Lambda's finest level; Python has none
    for variable in _LEVEL_VARIABLES:
        value = os.environ.get(variable, "").strip()
        if not value:
            continue
        named = names.get(value.upper())
        if named is not None:
            return named, ignored
        ignored.append((variable, value))
    return level, ignored


def _start_invocation(
    args: tuple[object, ...], kwargs: Mapping[str, object]
) -> tuple[Any, contextvars.Token[Any], contextvars.Token[Any]]:
    """Enter the invocation ``(event, context)``; returns what `_end_invocation` needs."""
    global _cold_start
    event = args[0] if args else kwargs.get("event")
    context = args[1] if len(args) > 1 else kwargs.get("context")
    ids: dict[str, Any] = {}
    request_id = getattr(context, "aws_request_id", None)
    if request_id is not None:
        ids["lambda_request_id"] = request_id
    api_request_id = _api_request_id(event)
    if api_request_id is not None:
        ids["api_request_id"] = api_request_id
    ids["cold_start"] = _cold_start
    _cold_start = False
    invocation = lambda_invocation(context)
    invocation.__enter__()
    # Bound fields get a scope of their own: what the invocation binds ends with it.
    return (
        invocation,
        _request_ids.set(ids),
        _context.set(_context.get(_NO_FIELDS)),
    )


def _end_invocation(
    started: tuple[Any, contextvars.Token[Any], contextvars.Token[Any]],
) -> None:
    invocation, ids, bound = started
    _context.reset(bound)
    _request_ids.reset(ids)
    invocation.__exit__(None, None, None)


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
    logme = staticmethod(logme)
    initial_trace_and_context_binds = staticmethod(initial_trace_and_context_binds)


log = _LogNamespace()


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


def get_trace_id() -> XRayTraceID:
    """The X-Ray trace of the current invocation, from ``_X_AMZN_TRACE_ID``.

    ``trace_id`` (its ``Root``), ``parent_id`` (its ``Parent``: the Lambda
    function's segment) and ``sampled``; None, None and False for what the
    variable lacks (all of it outside a traced invocation). Pass the trace on
    to a service that is not patched, or log it to find the trace of a line.
    """
    parts = _header_parts(os.environ.get("_X_AMZN_TRACE_ID", ""))
    return XRayTraceID(
        parts.get("Root") or None,
        parts.get("Parent") or None,
        parts.get("Sampled") == "1",
    )


class XRayTraceID(tuple[str | None, str | None, bool]):
    """``(trace_id, parent_id, sampled)``, as `get_trace_id` returns it."""

    __slots__ = ()

    def __new__(
        cls, trace_id: str | None, parent_id: str | None, sampled: bool
    ) -> Self:
        return super().__new__(cls, (trace_id, parent_id, sampled))

    @property
    def trace_id(self) -> str | None:
        """The trace's id (``Root``), e.g. ``1-5759e988-bd862e3fe1be46a994272793``."""
        return self[0]

    @property
    def parent_id(self) -> str | None:
        """The id of the segment new subsegments belong to (``Parent``)."""
        return self[1]

    @property
    def sampled(self) -> bool:
        """Whether the invocation is traced (``Sampled=1``)."""
        return self[2]


def get_xray_daemon() -> XRayDaemon:
    """The UDP address of the X-Ray daemon, from ``AWS_XRAY_DAEMON_ADDRESS``.

    Raises `XRayDaemonNotFoundError` when the variable is not set (outside
    Lambda) or is not an address.
    """
    setting = os.environ.get("AWS_XRAY_DAEMON_ADDRESS")
    if not setting:
        raise XRayDaemonNotFoundError("AWS_XRAY_DAEMON_ADDRESS is not set")
    address = _daemon_address(setting)
    if address is None:
        raise XRayDaemonNotFoundError(
            f"AWS_XRAY_DAEMON_ADDRESS is not an ip:port address: {setting!r}"
        )
    return XRayDaemon(*address[1])


class XRayDaemon(tuple[str, int]):
    """``(ip_address, port)``, as `get_xray_daemon` returns it."""

    __slots__ = ()

    def __new__(cls, ip_address: str, port: int) -> Self:
        return super().__new__(cls, (ip_address, port))

    @property
    def ip_address(self) -> str:
        """The daemon's IP address."""
        return self[0]

    @property
    def port(self) -> int:
        """The daemon's UDP port."""
        return self[1]


class XRayDaemonNotFoundError(Exception):
    """``AWS_XRAY_DAEMON_ADDRESS`` is not set, or is not an address."""


def send_segment_document_to_xray_daemon(segment_document: Mapping[str, Any]) -> None:
    """Send one segment or subsegment document to the daemon, as it is.

    Nothing is raised, and nothing waits: without a daemon the document is
    lost. `trace_xray_subsegment` and the patches send their own documents;
    this is for documents you build yourself.
    """
    _send(dict(segment_document))


def send_subsegment_to_xray_daemon(
    subsegment_id: str,
    parent_id: str,
    start_time: float,
    end_time: float | None = None,
    name: str | None = None,
    namespace: str = "remote",
    extra_data: Mapping[str, Any] | None = None,
) -> None:
    """Send a subsegment of the current trace that you time yourself.

    Without ``end_time`` the document says ``in_progress``; send it again
    with ``end_time`` when the work ends. ``namespace`` is written when it is
    one X-Ray knows (``aws``, ``remote``); ``extra_data`` is merged into the
    finished document (``http``, ``aws``, ``metadata``, ``error``...).
    """
    document: dict[str, Any] = {
        "type": "subsegment",
        "id": subsegment_id,
        "trace_id": get_trace_id().trace_id,
        "parent_id": parent_id,
        "start_time": start_time,
    }
    if name is not None:
        document["name"] = name
    if end_time is None:
        document["in_progress"] = True
    else:
        document["end_time"] = end_time
        if namespace in ("aws", "remote"):
            document["namespace"] = namespace
        document.update(extra_data or {})
    _send(document)


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
    parts = _header_parts(header)
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


def _arguments(
    skip_args: bool, args: tuple[object, ...], kwargs: Mapping[str, object]
) -> dict[str, Any]:
    """The fields recording a call's arguments (only when asked, and tracing)."""
    if skip_args or _trace_header() is None:
        return {}
    arguments = {"args": [repr(a)[:1000] for a in args]}
    arguments["kwargs"] = [f"{k}={v!r}"[:1000] for k, v in kwargs.items()]
    return {"metadata": {"default": arguments}}


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


def _header_parts(header: str) -> dict[str, str]:
    """The ``key=value`` parts of a trace header."""
    return dict(part.strip().partition("=")[::2] for part in header.split(";"))


class _XRayNamespace:
    """X-Ray tracing, as ``from fleece_runtime import xray`` (was ``fleece.xray``)."""

    __slots__ = ()
    trace_xray_subsegment = staticmethod(trace_xray_subsegment)
    in_current_context = staticmethod(in_current_context)
    monkey_patch_botocore_for_xray = staticmethod(monkey_patch_botocore_for_xray)
    monkey_patch_requests_for_xray = staticmethod(monkey_patch_requests_for_xray)
    get_trace_id = staticmethod(get_trace_id)
    XRayTraceID = XRayTraceID
    get_xray_daemon = staticmethod(get_xray_daemon)
    XRayDaemon = XRayDaemon
    XRayDaemonNotFoundError = XRayDaemonNotFoundError
    send_segment_document_to_xray_daemon = staticmethod(
        send_segment_document_to_xray_daemon
    )
    send_subsegment_to_xray_daemon = staticmethod(send_subsegment_to_xray_daemon)


xray = _XRayNamespace()


# ---------------------------------------------------------------------------
# Profiling: a sampled cProfile of a handler, logged as one event
# ---------------------------------------------------------------------------

# Your package and its bundled dependencies: not the standard library or boto3.
_PROFILE_FILTER = ("/var/task/",)


def profile_handler(
    sample: float = 0.5,
    stats_filter: list[str] | None = None,
    stats_limit: int = 20,
    logger: Logger | logging.Logger | None = None,
) -> Callable[[Callable[_P, _R]], Callable[_P, _R]]:
    """Decorator: profile a share of a handler's invocations with cProfile.

    Each invocation is profiled with probability ``sample`` (0 to 1; 0.5 by
    default). When it ends, even by an exception, one event is logged at INFO
    through ``logger`` (the logger ``profiler`` by default)::

        {"event": "Profiling completed", "total_calls": 5120, "primitive_calls": 4980,
         "total_time": 0.084, "profiling_data": [{"function": "handler",
         "filename": "/var/task/orders/handler.py", "lineno": 12, "ncalls": 1,
         "tottime": 0.0001, "tpercall": 0.0001, "cumtime": 0.0803, "cpercall": 0.0803}, ...]}

    ``profiling_data`` lists the functions by cumulative time, those whose
    ``path:line(function)`` matches every regular expression of
    ``stats_filter`` (by default ``/var/task/``: the function's own package and
    its bundled dependencies, not the standard library or boto3), at most
    ``stats_limit`` of them. An invocation that is not sampled, or that runs
    while another profiler is active, runs as it is.
    """
    if isinstance(sample, bool) or not isinstance(sample, int | float):
        raise TypeError(f"sample must be a number from 0 to 1, not {sample!r}")
    if not 0 <= sample <= 1:
        raise ValueError(f"sample must be from 0 to 1, not {sample!r}")
    if isinstance(stats_limit, bool) or not isinstance(stats_limit, int):
        raise TypeError(f"stats_limit must be an int, not {stats_limit!r}")
    if stats_limit < 1:
        raise ValueError(f"stats_limit must be at least 1, not {stats_limit!r}")
    patterns = list(_PROFILE_FILTER if stats_filter is None else stats_filter)
    target = (
        logger
        if isinstance(logger, Logger)
        else Logger(logger or logging.getLogger("profiler"))
    )

    def decorate(handler: Callable[_P, _R]) -> Callable[_P, _R]:
        import inspect

        if inspect.iscoroutinefunction(handler):
            raise TypeError("profile_handler profiles plain functions, not async ones")

        @functools.wraps(handler)
        def profiled(*args: _P.args, **kwargs: _P.kwargs) -> _R:
            import random

            if random.random() >= sample:  # noqa: S311 (sampling, not secrets)
                return handler(*args, **kwargs)
            import cProfile

            profile = cProfile.Profile()
            try:
                profile.enable()
            except ValueError:  # another profiler is active in this process
                return handler(*args, **kwargs)
            try:
                return handler(*args, **kwargs)
            finally:
                profile.disable()
                target.info(
                    "Profiling completed",
                    stacklevel=2,
                    **_profile_fields(profile, patterns, stats_limit),
                )

        return profiled

    return decorate


def _profile_fields(profile: Any, patterns: list[str], limit: int) -> dict[str, Any]:
    """The fields of the event of a finished profile."""
    import pstats
    import re

    stats: Any = pstats.Stats(profile)
    compiled = [re.compile(pattern) for pattern in patterns]
    entries = sorted(stats.stats.items(), key=lambda item: item[1][3], reverse=True)
    rows = []
    for (filename, lineno, function), (
        primitive,
        calls,
        tottime,
        cumtime,
        _,
    ) in entries:
        where = f"{filename}:{lineno}({function})"
        if not all(pattern.search(where) for pattern in compiled):
            continue
        rows.append(
            {
                "function": function,
                "filename": filename,
                "lineno": lineno,
                "ncalls": calls,
                "tottime": round(tottime, 6),
                "tpercall": round(tottime / calls, 6) if calls else 0.0,
                "cumtime": round(cumtime, 6),
                "cpercall": round(cumtime / primitive, 6) if primitive else 0.0,
            }
        )
        if len(rows) == limit:
            break
    return {
        "total_calls": stats.total_calls,
        "primitive_calls": stats.prim_calls,
        "total_time": round(stats.total_tt, 6),
        "profiling_data": rows,
    }


class _ProfilingNamespace:
    """Profiling, as ``from fleece_runtime import profiling`` (was ``fleece.profiling``)."""

    __slots__ = ()
    profile_handler = staticmethod(profile_handler)


profiling = _ProfilingNamespace()


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
    """boto3 with timeouts, as ``from fleece_runtime import boto3``.

    Every other name of boto3 (``session``, ``Session``, ``exceptions``,
    ``setup_default_session``, ``set_stream_logger``...) is boto3's own,
    imported at first use.
    """

    __slots__ = ()
    client = staticmethod(_boto3_client)
    resource = staticmethod(_boto3_resource)
    set_default_timeout = staticmethod(_boto3_set_default_timeout)

    def __getattr__(self, name: str) -> Any:
        return _forward("boto3", name)


boto3 = _Boto3Namespace()


# ---------------------------------------------------------------------------
# requests: timeouts, retries, one pooled session for module-level calls
# ---------------------------------------------------------------------------


_requests_lock = threading.Lock()


class _NotGiven:
    """The default of an argument that may be None."""


_NOT_GIVEN = _NotGiven()
_requests_default_timeout: _Timeout | None = None
# The urllib3 Retry arguments of `set_default_retries`, None when unset.
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
    if isinstance(retries, int):  # the total; the other defaults stay
        if retries < 0:
            raise ValueError(f"retries must be >= 0, not {retries}")
        return Retry(**{**(_requests_default_retries or {}), "total": retries})
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


@functools.cache
def _session_class() -> type[_Session]:
    """`requests.Session`: built at first use, when requests is imported."""
    try:
        import requests as _requests
    except ImportError as error:
        raise _missing("requests", error) from None
    adapter_class = _adapter_class()

    class Session(_requests.Session):
        """A ``requests.Session`` whose requests use ``timeout`` and ``retries``.

        ``timeout``: seconds, or ``(connect, read)``, for each request that
        sets none; None uses `set_default_timeout`'s value at the time of each
        request (if any). ``retries``: None (the defaults of
        `set_default_retries`, or none at all, as in plain requests), an int
        (the total; the other defaults stay), a dict of urllib3 ``Retry``
        arguments, or a ``Retry``. Bad values raise here, not at the first
        request. A subclass of ``requests.Session``: subclass it in turn, or
        check ``isinstance(session, requests.Session)``.
        """

        def __init__(
            self, timeout: _Timeout | None = None, retries: Any = None
        ) -> None:
            checked = _check_requests_timeout(timeout)
            retry = _make_retry(retries)
            super().__init__()
            self.timeout = checked
            adapter = adapter_class(checked, retry)
            self.mount("https://", adapter)
            self.mount("http://", adapter)

    Session.__qualname__ = "requests.Session"
    built: Any = Session
    return built  # type: ignore[no-any-return]


def _shared() -> _requests_lib.Session:
    global _shared_session
    with _requests_lock:
        if _shared_session is None:
            import http.cookiejar

            session = _session_class()()
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


def _requests_set_default_timeout(
    timeout: _Timeout | None = None,
    connect_timeout: float | None = None,
    read_timeout: float | None = None,
) -> None:
    """The timeout of every later request that sets none, in seconds.

    ``timeout`` sets both the connect and the read timeout (a ``(connect,
    read)`` tuple sets each); ``connect_timeout`` and ``read_timeout`` set
    one, over ``timeout``. With no argument, requests have no timeout again
    (as in plain requests). Applies to module-level calls and to sessions
    created without a timeout.
    """
    global _requests_default_timeout
    if connect_timeout is None and read_timeout is None:
        _requests_default_timeout = _check_requests_timeout(timeout)
        return
    if isinstance(timeout, tuple):
        raise TypeError(
            "timeout must be a number when connect_timeout or read_timeout is given"
        )
    both = _check_timeout("timeout", timeout)
    connect = _check_timeout("connect_timeout", connect_timeout)
    read = _check_timeout("read_timeout", read_timeout)
    _requests_default_timeout = (
        both if connect is None else connect,
        both if read is None else read,
    )


def _requests_set_default_retries(
    total: Any = _NOT_GIVEN, /, **retry_args: Any
) -> None:
    """The retries of every later request that sets none: urllib3 ``Retry`` arguments.

    ``set_default_retries(3)`` retries 3 times (connection errors, and 413,
    429 and 503 answers with a ``Retry-After`` header);
    ``set_default_retries(5, status_forcelist=[429, 503])`` or
    ``set_default_retries(total=5, backoff_factor=1, status_forcelist=[429,
    503])`` add statuses and backoff. With no argument, requests are not
    retried (as in plain requests). Bad arguments raise here.
    """
    global _requests_default_retries
    if not isinstance(total, _NotGiven):
        if "total" in retry_args:
            raise TypeError("set_default_retries got total twice")
        retry_args["total"] = total
    if retry_args:
        _make_retry(retry_args)
    _requests_default_retries = dict(retry_args) if retry_args else None


class _RequestsNamespace:
    """requests with timeouts and retries, as ``from fleece_runtime import requests``.

    Every other name of requests (``RequestException``, ``HTTPError``,
    ``ConnectionError``, ``Timeout``, ``Response``, ``codes``...) is requests'
    own, imported at first use.
    """

    __slots__ = ()

    @property
    def Session(self) -> type[_Session]:
        """``requests.Session`` with ``timeout`` and ``retries`` (a real subclass)."""
        return _session_class()

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

    def __getattr__(self, name: str) -> Any:
        return _forward("requests", name)


requests = _RequestsNamespace()


# ---------------------------------------------------------------------------
# Rackspace identity: checking a Rackspace token
# ---------------------------------------------------------------------------

_IDENTITY_URL = "https://identity.api.rackspacecloud.com"
_IDENTITY_TIMEOUT = 10.0


class Unauthorized(Exception):
    """A Rackspace token is missing or refused: HTTP status 401.

    ``str()`` is fleece 1.x's ``401: Unauthorized``, followed by `` - `` and
    the reason when there is one.
    """

    status_code = 401

    def __init__(self, reason: str | None = None) -> None:
        message = "401: Unauthorized"
        super().__init__(f"{message} - {reason}" if reason else message)


def validate(token: str, *, timeout: float = _IDENTITY_TIMEOUT) -> Any:
    """Check ``token`` with Rackspace identity; returns identity's answer.

    A GET of ``/v2.0/tokens/<token>`` on ``FLEECE_RACKSPACE_IDENTITY_URL``
    (default ``https://identity.api.rackspacecloud.com``, the variable
    ``fleece run`` reads too), authenticated by the token itself. Returns the
    parsed JSON (``access.token``, ``access.user``...); raises `Unauthorized`
    for an empty token and for any answer but 200. A network failure or a
    timeout (``timeout`` seconds) raises ``OSError``: the token was not
    checked, which is not the same as refused. The token is never logged.
    """
    from urllib.error import HTTPError
    from urllib.parse import quote
    from urllib.request import Request, urlopen

    if not isinstance(token, str) or not token:
        raise Unauthorized("no token")
    base = (os.environ.get("FLEECE_RACKSPACE_IDENTITY_URL") or _IDENTITY_URL).rstrip(
        "/"
    )
    request = Request(
        f"{base}/v2.0/tokens/{quote(token, safe='')}",
        headers={"X-Auth-Token": token, "Accept": "application/json"},
    )
    try:
        with urlopen(
            request, timeout=timeout
        ) as reply:  # noqa: S310 (https, or the URL set)
            status, body = reply.status, reply.read()
    except HTTPError as error:
        error.close()
        raise Unauthorized(f"identity answered {error.code}") from None
    if status != 200:
        raise Unauthorized(f"identity answered {status}")
    try:
        return json.loads(body)
    except ValueError:
        raise Unauthorized("identity's answer is not JSON") from None


def authenticate() -> Callable[[Callable[_P, _R]], Callable[_P, _R]]:
    """Decorator: calls need a ``token=`` that Rackspace identity accepts.

    ``@authenticate()`` checks the ``token`` keyword argument of each call
    with `validate` before the function runs; a missing or refused token
    raises `Unauthorized`. When the call also has a ``userinfo`` keyword
    argument, it receives identity's answer::

        @raxauth.authenticate()
        def list_orders(token=None, userinfo=None):
            tenant = userinfo["access"]["token"]["tenant"]["id"]
    """

    def decorate(func: Callable[_P, _R]) -> Callable[_P, _R]:
        @functools.wraps(func)
        def authenticated(*args: _P.args, **kwargs: _P.kwargs) -> _R:
            token = kwargs.get("token")
            if not token:
                raise Unauthorized("no token")
            userinfo = validate(str(token))
            if "userinfo" in kwargs:
                kwargs["userinfo"] = userinfo
            return func(*args, **kwargs)

        return authenticated

    return decorate


class _RaxauthNamespace:
    """Rackspace tokens, as ``from fleece_runtime import raxauth`` (was ``fleece.raxauth``)."""

    __slots__ = ()
    Unauthorized = Unauthorized
    validate = staticmethod(validate)
    authenticate = staticmethod(authenticate)


raxauth = _RaxauthNamespace()
