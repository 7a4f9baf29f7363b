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
the module names of fleece 1.x (``log``, ``xray``, ``profiling``,
``httperror``, ``connexion``, ``handlers``, ``events``, ``authpolicy``,
``testing``, ``boto3``, ``requests``, ``raxauth``) are namespace objects
grouping a section's names, and names that collide with nothing are also
importable flat (``from fleece_runtime import get_logger``).

Shared plumbing: the JSON encoder, the current invocation and its deadline
    JsonEncoder, json_dumps, lambda_invocation, current_lambda_context,
    Deadline, current_deadline, in_current_context
Logging: JSON lines, request ids, bound fields, classification, retries
    Classification, JsonFormatter, Logger, get_logger, getLogger,
    setup_root_logger, bind, unbind, inject_request_ids_into_environment,
    RetryHandler, logme, initial_trace_and_context_binds, log
X-Ray: subsegments sent to the daemon over UDP, without aws-xray-sdk
    trace_xray_subsegment, monkey_patch_botocore_for_xray,
    monkey_patch_requests_for_xray, monkey_patch_for_xray_on_import,
    trace_http_call, get_trace_id, xray
Profiling: a sampled cProfile of a handler, logged as one event
    profile_handler, profiling
Events: typed, read-only views of what invoked the function
    parse_event, Event, DirectInvocation, Headers, HttpRequest,
    HttpApiRequest, FunctionUrlRequest, RestApiRequest, AlbRequest, S3Event,
    S3Record, SqsEvent, SqsRecord, SnsEvent, SnsRecord, EventBridgeEvent,
    DynamoDBStreamEvent, DynamoDBRecord, KinesisEvent, KinesisRecord
Routing: HTTP routes and event-source routes, guard, middleware, CORS
    Router, Cors, RouteNotFound, BatchFailed
Responses and errors: Response, HTTPError, the error collector, log_method
    Response, HTTPError, ErrorCollector, collect, get_current_collector,
    log_method, httperror
Apps: WSGI and ASGI apps, OpenAPI apps through connexion 3
    wsgi_handler, build_wsgi_environ_from_event, asgi_handler,
    get_connexion_app, call_api, call_proxy_api, format_event, Hasher,
    connexion, handlers, events
Authorizers: API Gateway Lambda authorizer answers
    AuthPolicy, HttpVerb, InvalidPolicy, simple_authorizer_response,
    authpolicy
Testing helpers: a Lambda context and the events of every source
    LambdaContext, LambdaEvent, LambdaRequestGenerator, testing
boto3: clients and resources with timeouts
    boto3
requests: timeouts, retries, one pooled session for module-level calls
    requests
Rackspace identity: checking a Rackspace token
    raxauth
HTTP client: pooled, retried, deadline-bound, signed and traced calls
    HttpClient, HttpResponse, HttpHeaders, HttpStatusError,
    HttpConnectionError, HttpTimeoutError
Lambda invoke: calling other functions, synchronously or not
    invoke, invoke_async, invoke_result, InvokeResult, FunctionError
Resilience: retrying any call, and circuit breakers
    retry, RetryPolicy, CircuitBreaker, CircuitOpenError, CircuitState,
    CircuitStore, MemoryCircuitStore, DynamoDBCircuitStore
OAuth tokens: client-credentials access tokens, cached and refreshed early
    ClientCredentialsToken, TokenError
JWT: bearer tokens verified against a JWKS, in pure Python
    bearer_token, decode_jwt, JwtVerifier, JwtError, JwksError,
    jwt_middleware
Result: typed Ok/Err pipelines
    Ok, Err, Result, UnwrapError, result_try
Metrics: CloudWatch embedded metric format, one line per invocation
    Metrics
Parameters: SSM parameters and Secrets Manager secrets, cached
    get_parameter, get_parameters, get_parameters_by_path, get_secret,
    clear_parameter_cache, ParameterNotFound
Idempotency: a repeated event gets the first call's result, not a second run
    idempotent, AlreadyInProgress, IdempotencyValidationError,
    IdempotencyKeyError, IdempotencyRecord, IdempotencyStore,
    MemoryIdempotencyStore, DynamoDBIdempotencyStore

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
    from collections.abc import AsyncIterator, Iterable, Iterator
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
    "monkey_patch_for_xray_on_import",
    "trace_http_call",
    "get_trace_id",
    "xray",
    # Profiling
    "profile_handler",
    "profiling",
    # Events
    "parse_event",
    "Event",
    "DirectInvocation",
    "Headers",
    "HttpRequest",
    "HttpApiRequest",
    "FunctionUrlRequest",
    "RestApiRequest",
    "AlbRequest",
    "S3Event",
    "S3Record",
    "SqsEvent",
    "SqsRecord",
    "SnsEvent",
    "SnsRecord",
    "EventBridgeEvent",
    "DynamoDBStreamEvent",
    "DynamoDBRecord",
    "KinesisEvent",
    "KinesisRecord",
    # Routing
    "Router",
    "Cors",
    "RouteNotFound",
    "BatchFailed",
    # Responses and errors
    "Response",
    "HTTPError",
    "ErrorCollector",
    "collect",
    "get_current_collector",
    "log_method",
    "httperror",
    # Apps
    "wsgi_handler",
    "build_wsgi_environ_from_event",
    "asgi_handler",
    "get_connexion_app",
    "call_api",
    "call_proxy_api",
    "format_event",
    "Hasher",
    "connexion",
    "handlers",
    "events",
    # Authorizers
    "AuthPolicy",
    "HttpVerb",
    "InvalidPolicy",
    "simple_authorizer_response",
    "authpolicy",
    # Testing helpers
    "LambdaContext",
    "LambdaEvent",
    "LambdaRequestGenerator",
    "testing",
    # boto3
    "boto3",
    # requests
    "requests",
    # Rackspace identity
    "raxauth",
    # HTTP client
    "HttpClient",
    "HttpResponse",
    "HttpHeaders",
    "HttpStatusError",
    "HttpConnectionError",
    "HttpTimeoutError",
    # Lambda invoke
    "invoke",
    "invoke_async",
    "invoke_result",
    "InvokeResult",
    "FunctionError",
    # Resilience
    "retry",
    "RetryPolicy",
    "CircuitBreaker",
    "CircuitOpenError",
    "CircuitState",
    "CircuitStore",
    "MemoryCircuitStore",
    "DynamoDBCircuitStore",
    # OAuth tokens
    "ClientCredentialsToken",
    "TokenError",
    # JWT
    "bearer_token",
    "decode_jwt",
    "JwtVerifier",
    "JwtError",
    "JwksError",
    "jwt_middleware",
    # Result
    "Ok",
    "Err",
    "Result",
    "UnwrapError",
    "result_try",
    # Metrics
    "Metrics",
    # Parameters
    "get_parameter",
    "get_parameters",
    "get_parameters_by_path",
    "get_secret",
    "clear_parameter_cache",
    "ParameterNotFound",
    # Idempotency
    "idempotent",
    "AlreadyInProgress",
    "IdempotencyValidationError",
    "IdempotencyKeyError",
    "IdempotencyRecord",
    "IdempotencyStore",
    "MemoryIdempotencyStore",
    "DynamoDBIdempotencyStore",
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

_NO_FIELDS: Mapping[str, Any] = MappingProxyType({})

# The invocation running in this thread or task, as (its Lambda context, its
# request ids and cold_start, the log fields bound with `bind`). One variable:
# entering an invocation is one set and one reset. The tuple and its mappings
# are never mutated, only replaced, so every thread and task sees a
# consistent snapshot.
if TYPE_CHECKING:
    _Scope = tuple[Any, Mapping[str, Any], Mapping[str, Any]]
_NO_SCOPE: _Scope = (None, _NO_FIELDS, _NO_FIELDS)
_scope: contextvars.ContextVar[_Scope] = contextvars.ContextVar(
    "fleece_invocation", default=_NO_SCOPE
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
    encoder does not know raises ``TypeError``, a value that contains itself
    ``ValueError``.
    """
    try:
        return "".join(_compact_encode()(value, 0))
    except RecursionError:
        raise ValueError("the value contains itself, or nests too deeply") from None


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
    return _scope.get()[0]


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
    context = _scope.get()[0]
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
def _compact_encode() -> Callable[[object, int], Any]:
    """The compact encoder's chunk maker, made once: building it per call costs more
    than encoding a small body."""
    encoder = JsonEncoder(
        ensure_ascii=False, separators=(",", ":"), allow_nan=False, check_circular=False
    )
    import json.encoder

    make_encoder = getattr(json.encoder, "c_make_encoder", None)
    if make_encoder is None:  # an interpreter without the C accelerator
        return lambda value, level: encoder.iterencode(value, _one_shot=True)
    return make_encoder(  # type: ignore[no-any-return]
        None,
        encoder.default,
        json.encoder.encode_basestring,
        None,
        ":",
        ",",
        False,
        False,
        False,
    )


class _InvocationScope:
    """The context manager of `lambda_invocation`."""

    __slots__ = ("_token", "context")

    def __init__(self, context: object) -> None:
        self.context = context

    def __enter__(self) -> Any:
        _, ids, fields = _scope.get()
        self._token = _scope.set((self.context, ids, fields))
        return self.context

    def __exit__(self, *exc: object) -> None:
        _, ids, fields = _scope.get()
        _scope.reset(self._token)
        outer = _scope.get()
        if outer[1] is not ids or outer[2] is not fields:
            # Only the context is the block's: what was bound in it stays.
            _scope.set((outer[0], ids, fields))


def _number(name: str, value: object, *, positive: bool) -> float:
    """``value`` as a float, when it is a number of seconds (or a count) >= 0 (> 0)."""
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or value < 0
        or (positive and value == 0)
    ):
        limit = "> 0" if positive else ">= 0"
        raise ValueError(f"{name} must be a number {limit}, not {value!r}")
    return float(value)


def _error_code(error: BaseException) -> str | None:
    """The AWS error code of a botocore ``ClientError``, or None."""
    answer = getattr(error, "response", None)
    if not isinstance(answer, Mapping):
        return None
    code = answer.get("Error", {}).get("Code")
    return code if isinstance(code, str) else None


def _aws_client(service: str, timeout: float, attempts: int) -> Any:
    """A boto3 client of ``service`` for the runtime's own calls: ``timeout``
    seconds to connect and to read, ``attempts`` attempts in all (standard
    retries: botocore's ``max_attempts`` would count the retries only)."""
    try:
        from botocore.config import Config
    except ImportError as error:
        raise _missing("boto3", error) from None
    return boto3.client(
        service,
        timeout=timeout,
        config=Config(retries={"mode": "standard", "total_max_attempts": attempts}),
    )


# ---------------------------------------------------------------------------
# Logging: JSON lines, request ids, bound fields, classification, retries
# ---------------------------------------------------------------------------

_EVENT_ATTR = "fleece_event"
_REDACTED = "[REDACTED]"
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
    context, ids, bound = _scope.get()
    _scope.set((context, ids, {**bound, **fields} if bound else fields))


def unbind(*keys: str) -> None:
    """Remove bound fields from the current invocation's log lines.

    Keys that are not bound are ignored.
    """
    context, ids, bound = _scope.get()
    kept = {key: value for key, value in bound.items() if key not in keys}
    _scope.set((context, ids, kept))


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
        _, ids, bound = _scope.get()
        return self._render(
            record,
            _Event(
                ids,
                bound,
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
        _, ids, bound = _scope.get()
        event = _Event(
            ids,
            bound,
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
        context, ids, _ = _scope.get()
        _scope.set((context, ids, dict(fields)))
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
    (API Gateway events only: ``event["requestContext"]["requestId"]``, or
    ``event["rawContext"]["requestId"]`` in yoke's request template) and
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
            started = _start_invocation(*_event_and_context(args, kwargs))
            try:
                return await run(*args, **kwargs)
            finally:
                _scope.reset(started)

        wrapped: Any = with_request_ids_async
        async_handler: Callable[_P, _R] = wrapped
        return async_handler

    @functools.wraps(handler)
    def with_request_ids(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        started = _start_invocation(*_event_and_context(args, kwargs))
        try:
            return handler(*args, **kwargs)
        finally:
            _scope.reset(started)

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


def _event_and_context(
    args: tuple[object, ...], kwargs: Mapping[str, object]
) -> tuple[object, object]:
    """The ``(event, context)`` of a handler's arguments."""
    event = args[0] if args else kwargs.get("event")
    return event, args[1] if len(args) > 1 else kwargs.get("context")


def _start_invocation(
    event: object, context: object, route: str | None = None
) -> contextvars.Token[_Scope]:
    """Enter the invocation ``(event, context)``; ``_scope.reset()`` of the result ends it.

    What the invocation binds ends with it: the fields bound before it are
    kept, and the reset brings them back as they were. ``route``, a
    `Router`'s matched route, is bound as the ``route`` field.
    """
    global _cold_start
    ids: dict[str, Any] = {}
    request_id = getattr(context, "aws_request_id", None)
    if request_id is not None:
        ids["lambda_request_id"] = request_id
    # API Gateway's request id. Events are dicts: the exact type check
    # first, Mapping's costs ten times more.
    if type(event) is dict or isinstance(event, Mapping):
        request_context = event.get("requestContext")
        if request_context is None:  # yoke's request template (non-proxy)
            request_context = event.get("rawContext")
        if type(request_context) is dict or isinstance(request_context, Mapping):
            api_request_id = request_context.get("requestId")
            if isinstance(api_request_id, str):
                ids["api_request_id"] = api_request_id
    ids["cold_start"] = _cold_start
    _cold_start = False
    bound = _scope.get()[2]
    if route is not None:  # (unpacking the empty proxy costs three times a literal)
        bound = {**bound, "route": route} if bound else {"route": route}
    return _scope.set((context, ids, bound))


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
    the ``X-Amzn-Trace-Id`` header (see `trace_http_call`). Calling it again
    changes nothing.
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
        with trace_http_call(method, str(url)) as call:
            if call.headers and len(args) < 3:  # headers not given positionally
                kwargs["headers"] = {**call.headers, **(kwargs.get("headers") or {})}
            response = original(session, method, url, *args, **kwargs)
            length = response.headers.get("Content-Length")
            call.record(
                int(response.status_code),
                int(length) if length is not None and length.isdigit() else None,
            )
            return response

    vars(traced)["_fleece_xray"] = True
    patched: Any = traced
    Session.request = patched  # type: ignore[method-assign]


def monkey_patch_for_xray_on_import() -> None:
    """Trace botocore's and requests' calls, each patched once it is imported.

    A library already imported is patched at once; one imported later is
    patched as its import ends, so a function that never imports it does not
    pay for its import (botocore's client costs about 100 ms of a cold
    start). Then, as with `monkey_patch_botocore_for_xray` and
    `monkey_patch_requests_for_xray`, every AWS call is an ``aws``
    subsegment and every request a ``remote`` one. Calling it again changes
    nothing; a library that is never installed is never patched.
    """
    pending: dict[str, Callable[[], None]] = {}
    for module, patch in _XRAY_PATCHES:
        if module in sys.modules:
            patch()
        else:
            pending[module] = patch
    if not pending:
        return
    for finder in sys.meta_path:
        if isinstance(finder, _PatchOnImport):
            finder.pending.update(pending)
            return
    sys.meta_path.insert(0, _PatchOnImport(pending))


def trace_http_call(method: str, url: str) -> HttpCallTrace:
    """A context manager recording one HTTP call as an X-Ray ``remote`` subsegment.

    For any HTTP client: send ``call.headers`` with the request (the
    ``X-Amzn-Trace-Id`` that passes the trace on; empty outside a traced
    invocation) and ``record`` the answer's status::

        with xray.trace_http_call("GET", url) as call:
            answer = client.get(url, headers={**headers, **call.headers})
            call.record(answer.status_code)

    The subsegment is named after the host and records the method, the URL
    without its credentials and query string, the status (``error``,
    ``throttle`` or ``fault`` as X-Ray defines them) and, when the block
    raises, the exception. Nothing is sent unless the invocation is sampled;
    an invocation that is traced but not sampled passes ``Sampled=0`` on, so
    the service called does not sample it either. `HttpClient` and
    `monkey_patch_requests_for_xray` record their calls with it.
    """
    return HttpCallTrace(method, url)


class HttpCallTrace:
    """One HTTP call being traced, as `trace_http_call` returns it."""

    __slots__ = ("_subsegment", "headers", "method", "url")

    def __init__(self, method: str, url: str) -> None:
        self.method = str(method).upper()
        self.url = url
        # What the request must carry to pass the trace on.
        self.headers: dict[str, str] = {}
        self._subsegment: _Subsegment | None = None

    def __enter__(self) -> Self:
        header = os.environ.get("_X_AMZN_TRACE_ID")
        if not header:
            return self
        from urllib.parse import urlsplit

        parts = urlsplit(self.url)
        host = parts.netloc.rpartition("@")[2]  # never the user and password
        request = {"method": self.method, "url": f"{parts.scheme}://{host}{parts.path}"}
        subsegment = _begin(
            parts.hostname or "remote", "remote", http={"request": request}
        )
        if subsegment is None:
            root = _header_parts(header).get("Root")
            if root:
                self.headers["X-Amzn-Trace-Id"] = f"Root={root};Sampled=0"
            return self
        document = subsegment.document
        self.headers["X-Amzn-Trace-Id"] = (
            f"Root={document['trace_id']};Parent={document['id']};Sampled=1"
        )
        self._subsegment = subsegment
        return self

    def record(self, status: int, content_length: int | None = None) -> None:
        """Record the answer's status (and its length, when known)."""
        subsegment = self._subsegment
        if subsegment is None:
            return
        response: dict[str, int] = {"status": status}
        if content_length is not None:
            response["content_length"] = content_length
        document = subsegment.document
        document["http"]["response"] = response
        document.update(_status_flags(status))

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        subsegment, self._subsegment = self._subsegment, None
        if subsegment is not None:
            _end(subsegment, error)


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
        import atexit
        import socket

        with _xray_lock:
            sock = _xray_sockets.get(family)
            if sock is None:
                sock = socket.socket(family, socket.SOCK_DGRAM)
                sock.setblocking(False)
                _xray_sockets[family] = sock
                # Kept for the life of the process; closed at its end rather
                # than left to the garbage collector (a ResourceWarning).
                atexit.register(sock.close)
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


_XRAY_PATCHES = (
    ("botocore.client", monkey_patch_botocore_for_xray),
    ("requests", monkey_patch_requests_for_xray),
)


class _PatchOnImport:
    """A ``sys.meta_path`` finder: patches a library for X-Ray as its import ends."""

    def __init__(self, pending: dict[str, Callable[[], None]]) -> None:
        self.pending = pending

    def find_spec(self, name: str, path: Any, target: Any = None) -> Any:
        patch = self.pending.pop(name, None)
        if patch is None:  # once every library is patched, one dict lookup
            return None
        import importlib.util

        spec = importlib.util.find_spec(name)  # the other finders' answer
        if spec is not None and spec.loader is not None:
            loader: Any = _PatchingLoader(spec.loader, patch)
            spec.loader = loader
        return spec


class _PatchingLoader:
    """A module's own loader, then the patch; everything else is the loader's."""

    def __init__(self, loader: Any, patch: Callable[[], None]) -> None:
        self.loader = loader
        self.patch = patch

    def create_module(self, spec: Any) -> Any:
        return self.loader.create_module(spec)

    def exec_module(self, module: Any) -> None:
        self.loader.exec_module(module)
        module.__spec__.loader = module.__loader__ = self.loader  # as if never here
        self.patch()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.loader, name)


class _XRayNamespace:
    """X-Ray tracing, as ``from fleece_runtime import xray`` (was ``fleece.xray``)."""

    __slots__ = ()
    trace_xray_subsegment = staticmethod(trace_xray_subsegment)
    in_current_context = staticmethod(in_current_context)
    monkey_patch_botocore_for_xray = staticmethod(monkey_patch_botocore_for_xray)
    monkey_patch_requests_for_xray = staticmethod(monkey_patch_requests_for_xray)
    monkey_patch_for_xray_on_import = staticmethod(monkey_patch_for_xray_on_import)
    trace_http_call = staticmethod(trace_http_call)
    HttpCallTrace = HttpCallTrace
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
# Events: typed, read-only views of what invoked the function
# ---------------------------------------------------------------------------

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence


def parse_event(event: object, context: Any = None) -> Event:
    """The view of ``event`` for the source that sent it.

    The source is told by its own markers, as AWS documents them:

    ==========================================  =================================
    view (``source``)                           marker
    ==========================================  =================================
    `AlbRequest` (``alb``)                      ``requestContext.elb``
    `FunctionUrlRequest` (``function_url``)     ``version`` 2.0, a ``lambda-url``
                                                domain
    `HttpApiRequest` (``api_gateway_http``)     ``version`` 2.0 and
                                                ``requestContext.http``
    `RestApiRequest` (``api_gateway_rest``)     ``httpMethod`` and ``path``
    `S3Event`, `SqsEvent`, `SnsEvent`,          ``Records[0].eventSource``
    `DynamoDBStreamEvent`, `KinesisEvent`       (``EventSource`` for SNS)
    `EventBridgeEvent` (``eventbridge``)        ``source``, ``detail-type``,
                                                ``detail``
    `DirectInvocation` (``direct``)             anything else
    ==========================================  =================================

    An unknown or malformed shape is a `DirectInvocation`; this never raises.
    The views read the event when asked, and a field of the wrong type reads
    as absent. ``context`` (the Lambda context) is kept as the view's
    ``context``.
    """
    if not isinstance(event, dict):
        return DirectInvocation(event, context)
    request_context = event.get("requestContext")
    if isinstance(request_context, dict):
        if "elb" in request_context:
            return AlbRequest(event, context)
        if event.get("version") == "2.0" and "http" in request_context:
            domain = request_context.get("domainName")
            if isinstance(domain, str) and ".lambda-url." in domain:
                return FunctionUrlRequest(event, context)
            return HttpApiRequest(event, context)
    if "httpMethod" in event and "path" in event:
        return RestApiRequest(event, context)
    records = event.get("Records")
    if isinstance(records, list) and records and isinstance(records[0], dict):
        first = records[0]
        marker = first.get("eventSource") or first.get("EventSource")
        view = _RECORD_EVENTS.get(marker) if isinstance(marker, str) else None
        if view is not None:
            return view(event, context)
    if "detail-type" in event and "source" in event and "detail" in event:
        return EventBridgeEvent(event, context)
    return DirectInvocation(event, context)


class Event:
    """What invoked the function: the base of the views of `parse_event`.

    ``raw`` is the event as Lambda passed it, ``context`` the Lambda context
    given to `parse_event`, ``source`` the name of the event's source.
    """

    __slots__ = ("context", "raw")
    source = "direct"

    def __init__(self, raw: Any, context: Any = None) -> None:
        self.raw = raw
        self.context = context

    def __repr__(self) -> str:
        return f"<{type(self).__name__}>"


class DirectInvocation(Event):
    """An event no AWS source sent: ``aws lambda invoke``, a test, a Step Function.

    ``payload`` is the event itself, whatever its type.
    """

    __slots__ = ()

    @property
    def payload(self) -> Any:
        """The event, as given."""
        return self.raw


class Headers(Mapping[str, str]):
    """HTTP headers: names are case-insensitive, values strings.

    ``headers["Content-Type"]`` and ``headers["content-type"]`` are the same;
    a header sent several times reads as its values joined by ``", "``, and
    `get_all` gives them one by one. Iteration yields lower-case names.
    """

    __slots__ = ("_lists",)

    def __init__(self, lists: Mapping[str, list[str]] | None = None) -> None:
        self._lists: dict[str, list[str]] = {}
        for name, values in (lists or {}).items():
            self._lists.setdefault(name.lower(), []).extend(values)

    def __getitem__(self, name: str) -> str:
        values = self._lists[name.lower()]
        return values[0] if len(values) == 1 else ", ".join(values)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._lists

    def __iter__(self) -> Iterator[str]:
        return iter(self._lists)

    def __len__(self) -> int:
        return len(self._lists)

    def __repr__(self) -> str:
        return f"Headers({self._lists!r})"

    def get_all(self, name: str) -> list[str]:
        """Every value of the header ``name``, in the order sent; [] when absent."""
        return list(self._lists.get(name.lower(), ()))


class HttpRequest(Event):
    """An HTTP request: API Gateway (REST or HTTP API), ALB or a function URL.

    The same reading for every source:

    - ``method`` (upper case) and ``path``, without the stage that API
      Gateway puts in front of it on its own domain (``base_path`` holds
      that part) and without a `Router`'s ``strip_prefixes``; ``raw_path`` is
      the path as the event gives it;
    - ``path_params``: the parameters of the matched route (set by `Router`;
      before that, API Gateway's ``pathParameters``), and ``route``, the
      matched route's template;
    - ``headers`` (`Headers`), ``query`` (each parameter's last value),
      ``query_all`` (all its values), ``cookies``;
    - ``body`` (bytes, base64-decoded when the event says so), ``text``
      and ``json`` (None for an empty body); a body that cannot be read
      raises `HTTPError` 400;
    - ``source_ip``, ``request_id``, ``stage``, ``claims`` (of a JWT,
      Cognito or Lambda authorizer; middleware may set them) and
      ``authorizer`` (what API Gateway passed, as it passed it).
    """

    __slots__ = (
        "_body",
        "_claims",
        "_cookies",
        "_headers",
        "_params",
        "_query",
        "method",
        "path",
        "raw_path",
        "route",
    )

    def __init__(self, raw: dict[str, Any], context: Any = None) -> None:
        self.raw = raw
        self.context = context
        self.method, self.raw_path = self._method_and_path()
        self.path = self._routed_path()
        self.route: str | None = None
        self._params: dict[str, str] | None = None
        self._headers: Headers | None = None
        self._query: dict[str, list[str]] | None = None
        self._cookies: dict[str, str] | None = None
        self._body: bytes | None = None
        self._claims: Mapping[str, Any] | None = None

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.method} {self.path}>"

    @property
    def path_params(self) -> dict[str, str]:
        """The path parameters: the matched route's, else API Gateway's."""
        if self._params is None:
            given = self.raw.get("pathParameters")
            self._params = {
                name: value
                for name, value in (given if isinstance(given, dict) else {}).items()
                if isinstance(name, str) and isinstance(value, str)
            }
        return self._params

    @path_params.setter
    def path_params(self, params: dict[str, str]) -> None:
        self._params = params

    @property
    def headers(self) -> Headers:
        """The request's headers, names case-insensitive."""
        if self._headers is None:
            self._headers = Headers(self._header_lists())
        return self._headers

    @property
    def query(self) -> dict[str, str]:
        """The query parameters, each with its last value."""
        return {name: values[-1] for name, values in self._query_lists().items()}

    @property
    def query_all(self) -> dict[str, list[str]]:
        """The query parameters, each with all its values in order."""
        return {name: list(values) for name, values in self._query_lists().items()}

    @property
    def cookies(self) -> dict[str, str]:
        """The request's cookies, by name."""
        if self._cookies is None:
            self._cookies = _parsed_cookies(self._cookie_strings())
        return self._cookies

    @property
    def body(self) -> bytes:
        """The body as bytes (base64-decoded when the event says it is encoded)."""
        if self._body is None:
            body = self.raw.get("body")
            if not isinstance(body, str) or not body:
                self._body = b""
            elif self.raw.get("isBase64Encoded") is True:
                import binascii

                try:
                    self._body = binascii.a2b_base64(body, strict_mode=True)
                except (binascii.Error, ValueError):
                    raise HTTPError(
                        400, "the request body is not valid base64"
                    ) from None
            else:
                self._body = body.encode("utf-8", "surrogatepass")
        return self._body

    @property
    def text(self) -> str:
        """The body as text (UTF-8); `HTTPError` 400 when it is not."""
        body = self.raw.get("body")
        if isinstance(body, str) and self.raw.get("isBase64Encoded") is not True:
            return body
        try:
            return self.body.decode("utf-8")
        except UnicodeDecodeError:
            raise HTTPError(400, "the request body is not UTF-8 text") from None

    @property
    def json(self) -> Any:
        """The body parsed as JSON; None when empty, `HTTPError` 400 when not JSON."""
        text = self.text
        if not text:
            return None
        try:
            return json.loads(
                text, parse_constant=_not_json_number, parse_float=_finite_float
            )
        except (ValueError, RecursionError):
            raise HTTPError(400, "the request body is not valid JSON") from None

    @property
    def is_base64_encoded(self) -> bool:
        """Whether the event carries the body base64-encoded."""
        return self.raw.get("isBase64Encoded") is True

    @property
    def authorizer(self) -> dict[str, Any]:
        """``requestContext.authorizer`` as API Gateway passed it ({} when absent)."""
        return _dict(_dict(self.raw.get("requestContext")).get("authorizer"))

    @property
    def claims(self) -> Mapping[str, Any]:
        """The caller's claims: those of a JWT (HTTP API) or Cognito (REST)
        authorizer, else the context of a Lambda authorizer; {} without one.

        Middleware that checks a token itself (`jwt_middleware`) sets them
        for the guard and the route.
        """
        if self._claims is None:
            self._claims = self._authorizer_claims()
        return self._claims

    @claims.setter
    def claims(self, claims: Mapping[str, Any]) -> None:
        self._claims = claims

    @property
    def request_id(self) -> str | None:
        """The request id of API Gateway (or of the function URL); None for ALB."""
        value = _dict(self.raw.get("requestContext")).get("requestId")
        return value if isinstance(value, str) else None

    @property
    def base_path(self) -> str:
        """What the URL path had before ``path``: the stage on API Gateway's
        own domain (``/prod``), else "". WSGI and ASGI apps get it as their
        ``SCRIPT_NAME``/``root_path``, so the URLs they build are right."""
        stage = self.stage
        if not stage or stage == "$default":
            return ""
        prefix = f"/{stage}"
        path = self.raw_path
        return prefix if path == prefix or path.startswith(prefix + "/") else ""

    @property
    def stage(self) -> str | None:
        """The API Gateway stage (``$default`` for HTTP APIs without one)."""
        value = _dict(self.raw.get("requestContext")).get("stage")
        return value if isinstance(value, str) else None

    @property
    def source_ip(self) -> str | None:
        """The caller's IP address."""
        value = _dict(_dict(self.raw.get("requestContext")).get("http")).get("sourceIp")
        return value if isinstance(value, str) else None

    # Each source reads its own fields: these are overridden per view.
    def _method_and_path(self) -> tuple[str, str]:
        http = _dict(_dict(self.raw.get("requestContext")).get("http"))
        return _str(http.get("method")).upper(), _str(self.raw.get("rawPath"))

    def _routed_path(self) -> str:
        path, base = self.raw_path, self.base_path
        if base:
            path = path[len(base) :] or "/"
        return _decoded_path(path) if "%" in path else path

    def _header_lists(self) -> dict[str, list[str]]:
        return {
            name: [value]
            for name, value in _dict(self.raw.get("headers")).items()
            if isinstance(name, str) and isinstance(value, str)
        }

    def _query_lists(self) -> dict[str, list[str]]:
        if self._query is None:
            raw_query = self.raw.get("rawQueryString")
            self._query = _parsed_query(raw_query if isinstance(raw_query, str) else "")
        return self._query

    def _cookie_strings(self) -> list[str]:
        cookies = self.raw.get("cookies")
        if isinstance(cookies, list):
            return [cookie for cookie in cookies if isinstance(cookie, str)]
        return self.headers.get_all("cookie")

    def _authorizer_claims(self) -> Mapping[str, Any]:
        authorizer = self.authorizer
        claims = _dict(authorizer.get("jwt")).get("claims")
        if isinstance(claims, dict):
            return claims
        return _dict(authorizer.get("lambda"))


class HttpApiRequest(HttpRequest):
    """A request of an API Gateway HTTP API (payload format 2.0).

    ``route_key`` is API Gateway's own route (``GET /orders/{id}``);
    ``stage_variables`` its stage variables.
    """

    __slots__ = ()
    source = "api_gateway_http"

    @property
    def route_key(self) -> str | None:
        """API Gateway's route key, e.g. ``GET /orders/{id}`` or ``$default``."""
        value = self.raw.get("routeKey")
        return value if isinstance(value, str) else None

    @property
    def stage_variables(self) -> dict[str, str]:
        """The stage variables ({} when none)."""
        return _dict(self.raw.get("stageVariables"))


class FunctionUrlRequest(HttpApiRequest):
    """A request to a Lambda function URL (the HTTP API 2.0 payload)."""

    __slots__ = ()
    source = "function_url"

    def _authorizer_claims(self) -> Mapping[str, Any]:
        return {}  # function URLs have IAM auth or none


class RestApiRequest(HttpRequest):
    """A request of an API Gateway REST API (or an HTTP API's payload 1.0).

    ``resource`` is API Gateway's resource (``/orders/{id}``);
    ``stage_variables`` its stage variables.
    """

    __slots__ = ()
    source = "api_gateway_rest"

    @property
    def resource(self) -> str | None:
        """API Gateway's resource template, e.g. ``/orders/{id}``."""
        value = self.raw.get("resource")
        return value if isinstance(value, str) else None

    @property
    def stage_variables(self) -> dict[str, str]:
        """The stage variables ({} when none)."""
        return _dict(self.raw.get("stageVariables"))

    @property
    def source_ip(self) -> str | None:
        """The caller's IP address."""
        identity = _dict(_dict(self.raw.get("requestContext")).get("identity"))
        value = identity.get("sourceIp")
        return value if isinstance(value, str) else None

    def _method_and_path(self) -> tuple[str, str]:
        return _str(self.raw.get("httpMethod")).upper(), _str(self.raw.get("path"))

    def _routed_path(self) -> str:
        return self.raw_path  # API Gateway gives REST paths decoded, without the stage

    @property
    def base_path(self) -> str:
        """What the URL path had before ``path``: the stage on API Gateway's
        own domain (``/prod``), else ""."""
        stage = self.stage
        on_api_domain = ".execute-api." in self.headers.get("host", "")
        return f"/{stage}" if stage and stage != "$default" and on_api_domain else ""

    def _header_lists(self) -> dict[str, list[str]]:
        return _multi_values(self.raw, "multiValueHeaders", "headers")

    def _query_lists(self) -> dict[str, list[str]]:
        if self._query is None:
            self._query = _multi_values(
                self.raw,
                "multiValueQueryStringParameters",
                "queryStringParameters",
            )
        return self._query

    def _authorizer_claims(self) -> Mapping[str, Any]:
        authorizer = self.authorizer
        claims = authorizer.get("claims")
        if isinstance(claims, dict):
            return claims
        jwt_claims = _dict(authorizer.get("jwt")).get("claims")  # HTTP API payload 1.0
        if isinstance(jwt_claims, dict):
            return jwt_claims
        return {
            key: value
            for key, value in authorizer.items()
            if key not in ("claims", "scopes", "integrationLatency")
        }


class AlbRequest(HttpRequest):
    """A request forwarded by an Application Load Balancer.

    Headers and query parameters come single- or multi-valued, as the target
    group is set; the answer follows the same setting. ALB passes query
    parameters percent-encoded: they are decoded here. ``source_ip`` is the
    first address of ``X-Forwarded-For``.
    """

    __slots__ = ()
    source = "alb"

    @property
    def target_group_arn(self) -> str | None:
        """The ARN of the target group that forwarded the request."""
        elb = _dict(_dict(self.raw.get("requestContext")).get("elb"))
        value = elb.get("targetGroupArn")
        return value if isinstance(value, str) else None

    @property
    def multi_value(self) -> bool:
        """Whether the target group sends (and expects) multi-value headers."""
        return isinstance(self.raw.get("multiValueHeaders"), dict)

    @property
    def source_ip(self) -> str | None:
        """The client's address: the first of ``X-Forwarded-For``."""
        forwarded = self.headers.get("x-forwarded-for")
        return forwarded.split(",")[0].strip() if forwarded else None

    @property
    def request_id(self) -> str | None:
        """None: ALB gives no request id (its trace id is ``X-Amzn-Trace-Id``)."""
        return None

    @property
    def stage(self) -> str | None:
        """None: load balancers have no stages."""
        return None

    def _method_and_path(self) -> tuple[str, str]:
        return _str(self.raw.get("httpMethod")).upper(), _str(self.raw.get("path"))

    def _header_lists(self) -> dict[str, list[str]]:
        return _multi_values(self.raw, "multiValueHeaders", "headers")

    def _query_lists(self) -> dict[str, list[str]]:
        if self._query is None:
            from urllib.parse import unquote_plus

            self._query = {
                unquote_plus(name): [unquote_plus(value) for value in values]
                for name, values in _multi_values(
                    self.raw,
                    "multiValueQueryStringParameters",
                    "queryStringParameters",
                ).items()
            }
        return self._query

    def _authorizer_claims(self) -> Mapping[str, Any]:
        return {}


class _Record:
    """One record of a batch or notification; ``raw`` is the record as sent."""

    __slots__ = ("raw",)

    def __init__(self, raw: object) -> None:
        self.raw = _dict(raw)


class S3Event(Event):
    """An S3 notification: ``records`` are its `S3Record`s."""

    __slots__ = ()
    source = "s3"

    @property
    def records(self) -> list[S3Record]:
        """The notification's records (S3 sends one per event)."""
        return [S3Record(record) for record in _records(self.raw)]


class S3Record(_Record):
    """One object event of an S3 notification.

    ``bucket``, ``key`` (decoded: S3 sends it URL-encoded, spaces as ``+``),
    ``size``, ``etag``, ``version_id``, ``event_name``
    (``ObjectCreated:Put``), ``event_time``, ``region``; ``raw`` is the record.
    """

    def __repr__(self) -> str:
        return f"<S3Record {self.event_name} s3://{self.bucket}/{self.key}>"

    @property
    def bucket(self) -> str:
        """The bucket's name."""
        return _str(_dict(_dict(self.raw.get("s3")).get("bucket")).get("name"))

    @property
    def key(self) -> str:
        """The object's key, decoded."""
        from urllib.parse import unquote_plus

        return unquote_plus(_str(self._object.get("key")))

    @property
    def size(self) -> int | None:
        """The object's size in bytes (absent for deletions)."""
        size = self._object.get("size")
        return size if isinstance(size, int) else None

    @property
    def etag(self) -> str | None:
        """The object's ETag."""
        return _optional_str(self._object.get("eTag"))

    @property
    def version_id(self) -> str | None:
        """The object's version, on a versioned bucket."""
        return _optional_str(self._object.get("versionId"))

    @property
    def event_name(self) -> str:
        """What happened, e.g. ``ObjectCreated:Put`` or ``ObjectRemoved:Delete``."""
        return _str(self.raw.get("eventName"))

    @property
    def event_time(self) -> str:
        """When it happened (ISO 8601 text)."""
        return _str(self.raw.get("eventTime"))

    @property
    def region(self) -> str:
        """The bucket's region."""
        return _str(self.raw.get("awsRegion"))

    @property
    def _object(self) -> dict[str, Any]:
        return _dict(_dict(self.raw.get("s3")).get("object"))


class SqsEvent(Event):
    """A batch of SQS messages: ``records`` are its `SqsRecord`s."""

    __slots__ = ()
    source = "sqs"

    @property
    def records(self) -> list[SqsRecord]:
        """The batch's messages, in the order received."""
        return [SqsRecord(record) for record in _records(self.raw)]


class SqsRecord(_Record):
    """One SQS message.

    ``message_id``, ``body`` (text) and ``json`` (the body parsed; raises
    ``ValueError`` when it is not JSON), ``attributes`` (``SentTimestamp``,
    ``MessageGroupId``...), ``message_attributes``, ``queue`` (the queue's
    name) and ``queue_arn``, ``receipt_handle``; ``raw`` is the record.
    """

    def __repr__(self) -> str:
        return f"<SqsRecord {self.message_id} from {self.queue}>"

    @property
    def message_id(self) -> str:
        """The message's id: what a batch reports when it failed."""
        return _str(self.raw.get("messageId"))

    @property
    def body(self) -> str:
        """The message body, as sent."""
        return _str(self.raw.get("body"))

    @property
    def json(self) -> Any:
        """The body parsed as JSON (``ValueError`` when it is not JSON)."""
        return json.loads(self.body)

    @property
    def attributes(self) -> dict[str, str]:
        """System attributes: ``ApproximateReceiveCount``, ``SentTimestamp``, ..."""
        return _dict(self.raw.get("attributes"))

    @property
    def message_attributes(self) -> dict[str, Any]:
        """The sender's message attributes, as SQS passes them."""
        return _dict(self.raw.get("messageAttributes"))

    @property
    def queue_arn(self) -> str:
        """The ARN of the queue."""
        return _str(self.raw.get("eventSourceARN"))

    @property
    def queue(self) -> str:
        """The name of the queue (the end of its ARN)."""
        return self.queue_arn.rpartition(":")[2]

    @property
    def receipt_handle(self) -> str:
        """The handle that deletes or changes the visibility of this receipt."""
        return _str(self.raw.get("receiptHandle"))

    @property
    def message_group_id(self) -> str | None:
        """The message group of a FIFO queue's message."""
        return _optional_str(self.attributes.get("MessageGroupId"))


class SnsEvent(Event):
    """An SNS notification: ``records`` are its `SnsRecord`s."""

    __slots__ = ()
    source = "sns"

    @property
    def records(self) -> list[SnsRecord]:
        """The notification's records (SNS sends one per invocation)."""
        return [SnsRecord(record) for record in _records(self.raw)]


class SnsRecord(_Record):
    """One SNS message.

    ``message`` (text), ``json`` (the message parsed; ``ValueError`` when
    not JSON), ``subject``, ``message_id``, ``topic`` (the topic's name) and
    ``topic_arn``, ``message_attributes`` (name -> value), ``timestamp``;
    ``raw`` is the record.
    """

    def __repr__(self) -> str:
        return f"<SnsRecord {self.message_id} from {self.topic}>"

    @property
    def message(self) -> str:
        """The message, as published."""
        return _str(self._sns.get("Message"))

    @property
    def json(self) -> Any:
        """The message parsed as JSON (``ValueError`` when it is not JSON)."""
        return json.loads(self.message)

    @property
    def subject(self) -> str | None:
        """The subject, when the publisher gave one."""
        return _optional_str(self._sns.get("Subject"))

    @property
    def message_id(self) -> str:
        """The message's id."""
        return _str(self._sns.get("MessageId"))

    @property
    def topic_arn(self) -> str:
        """The ARN of the topic."""
        return _str(self._sns.get("TopicArn"))

    @property
    def topic(self) -> str:
        """The name of the topic (the end of its ARN)."""
        return self.topic_arn.rpartition(":")[2]

    @property
    def message_attributes(self) -> dict[str, str]:
        """The message attributes, name -> value."""
        return {
            name: _str(_dict(attribute).get("Value"))
            for name, attribute in _dict(self._sns.get("MessageAttributes")).items()
        }

    @property
    def timestamp(self) -> str:
        """When the message was published (ISO 8601 text)."""
        return _str(self._sns.get("Timestamp"))

    @property
    def _sns(self) -> dict[str, Any]:
        return _dict(self.raw.get("Sns"))


class EventBridgeEvent(Event):
    """An EventBridge event (also scheduled events: source ``aws.events``).

    ``source``, ``detail_type``, ``detail``, ``id``, ``account``, ``region``,
    ``time``, ``resources``; ``raw`` is the event.
    """

    __slots__ = ()
    source = "eventbridge"

    @property
    def event_source(self) -> str:
        """The event's ``source``, e.g. ``aws.s3`` or ``com.example.orders``."""
        return _str(self.raw.get("source"))

    @property
    def detail_type(self) -> str:
        """The event's ``detail-type``, e.g. ``Object Created``."""
        return _str(self.raw.get("detail-type"))

    @property
    def detail(self) -> Any:
        """The event's ``detail``: what the sender put there."""
        return self.raw.get("detail")

    @property
    def id(self) -> str:
        """The event's id."""
        return _str(self.raw.get("id"))

    @property
    def account(self) -> str:
        """The account the event comes from."""
        return _str(self.raw.get("account"))

    @property
    def region(self) -> str:
        """The region the event comes from."""
        return _str(self.raw.get("region"))

    @property
    def time(self) -> str:
        """When the event happened (ISO 8601 text)."""
        return _str(self.raw.get("time"))

    @property
    def resources(self) -> list[str]:
        """The ARNs of the resources involved."""
        resources = self.raw.get("resources")
        return (
            [r for r in resources if isinstance(r, str)]
            if isinstance(resources, list)
            else []
        )


class DynamoDBStreamEvent(Event):
    """A batch of DynamoDB Streams records: ``records`` are `DynamoDBRecord`s."""

    __slots__ = ()
    source = "dynamodb"

    @property
    def records(self) -> list[DynamoDBRecord]:
        """The batch's records, in stream order."""
        return [DynamoDBRecord(record) for record in _records(self.raw)]


class DynamoDBRecord(_Record):
    """One change of a DynamoDB table.

    ``event_name`` (``INSERT``, ``MODIFY``, ``REMOVE``), ``table`` (the
    table's name), ``keys``, ``new_image`` and ``old_image`` as plain Python
    values (numbers as ``Decimal``, sets as sets, binary as bytes; None when
    the stream does not carry that image), ``sequence_number``,
    ``event_id``; ``raw`` is the record, in DynamoDB's typed JSON.
    """

    def __repr__(self) -> str:
        return f"<DynamoDBRecord {self.event_name} in {self.table}>"

    @property
    def event_name(self) -> str:
        """``INSERT``, ``MODIFY`` or ``REMOVE``."""
        return _str(self.raw.get("eventName"))

    @property
    def event_id(self) -> str:
        """The record's id."""
        return _str(self.raw.get("eventID"))

    @property
    def table(self) -> str:
        """The table's name, from the stream's ARN."""
        arn = _str(self.raw.get("eventSourceARN"))
        return arn.partition(":table/")[2].partition("/")[0]

    @property
    def sequence_number(self) -> str:
        """The record's place in the stream: what a batch reports when it failed."""
        return _str(self._change.get("SequenceNumber"))

    @property
    def keys(self) -> dict[str, Any]:
        """The item's key attributes."""
        return _dynamodb_item(self._change.get("Keys")) or {}

    @property
    def new_image(self) -> dict[str, Any] | None:
        """The item after the change (None for REMOVE or a keys-only stream)."""
        return _dynamodb_item(self._change.get("NewImage"))

    @property
    def old_image(self) -> dict[str, Any] | None:
        """The item before the change (None for INSERT or without old images)."""
        return _dynamodb_item(self._change.get("OldImage"))

    @property
    def _change(self) -> dict[str, Any]:
        return _dict(self.raw.get("dynamodb"))


class KinesisEvent(Event):
    """A batch of Kinesis records: ``records`` are `KinesisRecord`s."""

    __slots__ = ()
    source = "kinesis"

    @property
    def records(self) -> list[KinesisRecord]:
        """The batch's records, in shard order."""
        return [KinesisRecord(record) for record in _records(self.raw)]


class KinesisRecord(_Record):
    """One Kinesis data record.

    ``data`` (bytes: Kinesis sends it base64-encoded), ``text``, ``json``
    (``ValueError`` when not JSON), ``partition_key``, ``sequence_number``,
    ``stream`` (the stream's name), ``event_id``; ``raw`` is the record.
    """

    def __repr__(self) -> str:
        return f"<KinesisRecord {self.sequence_number} from {self.stream}>"

    @property
    def data(self) -> bytes:
        """The record's data, decoded from base64 (``ValueError`` when it is not)."""
        import binascii

        try:
            return binascii.a2b_base64(
                _str(self._kinesis.get("data")), strict_mode=True
            )
        except binascii.Error as error:
            raise ValueError(f"Kinesis data is not base64: {error}") from None

    @property
    def text(self) -> str:
        """The data as UTF-8 text (``ValueError`` when it is not)."""
        return self.data.decode("utf-8")

    @property
    def json(self) -> Any:
        """The data parsed as JSON (``ValueError`` when it is not JSON)."""
        return json.loads(self.text)

    @property
    def partition_key(self) -> str:
        """The record's partition key."""
        return _str(self._kinesis.get("partitionKey"))

    @property
    def sequence_number(self) -> str:
        """The record's place in its shard: what a batch reports when it failed."""
        return _str(self._kinesis.get("sequenceNumber"))

    @property
    def stream(self) -> str:
        """The stream's name, from its ARN."""
        return _str(self.raw.get("eventSourceARN")).rpartition(":stream/")[2]

    @property
    def event_id(self) -> str:
        """The record's id (shard and sequence number)."""
        return _str(self.raw.get("eventID"))

    @property
    def _kinesis(self) -> dict[str, Any]:
        return _dict(self.raw.get("kinesis"))


_RECORD_EVENTS: dict[str, type[Event]] = {
    "aws:s3": S3Event,
    "aws:sqs": SqsEvent,
    "aws:sns": SnsEvent,
    "aws:dynamodb": DynamoDBStreamEvent,
    "aws:kinesis": KinesisEvent,
}


def _dict(value: object) -> dict[str, Any]:
    """``value`` if it is a JSON object, else an empty one."""
    return value if isinstance(value, dict) else {}


def _str(value: object) -> str:
    """``value`` if it is a string, else ""."""
    return value if isinstance(value, str) else ""


def _optional_str(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _records(event: dict[str, Any]) -> list[Any]:
    records = event.get("Records")
    return records if isinstance(records, list) else []


def _multi_values(
    event: dict[str, Any], multi_key: str, single_key: str
) -> dict[str, list[str]]:
    """Name -> values from the multi-value field, else the single-value one."""
    multi = event.get(multi_key)
    if isinstance(multi, dict):
        return {
            name: [value for value in values if isinstance(value, str)]
            for name, values in multi.items()
            if isinstance(name, str) and isinstance(values, list)
        }
    return {
        name: [value]
        for name, value in _dict(event.get(single_key)).items()
        if isinstance(name, str) and isinstance(value, str)
    }


def _not_json_number(text: str) -> float:
    raise ValueError(f"{text} is not a JSON number")


def _finite_float(text: str) -> float:
    number = float(text)
    if number - number != 0:  # inf - inf is nan, and nan != 0
        raise ValueError(f"{text} is too large a number")
    return number


def _decoded_path(path: str) -> str:
    from urllib.parse import unquote

    return unquote(path)


def _parsed_query(query: str) -> dict[str, list[str]]:
    if not query:
        return {}
    from urllib.parse import parse_qsl

    parsed: dict[str, list[str]] = {}
    for name, value in parse_qsl(query, keep_blank_values=True):
        parsed.setdefault(name, []).append(value)
    return parsed


def _parsed_cookies(strings: list[str]) -> dict[str, str]:
    """Cookies by name from ``Cookie`` header values or HTTP API's ``cookies``."""
    cookies: dict[str, str] = {}
    for string in strings:
        for pair in string.split(";"):
            name, equals, value = pair.partition("=")
            name = name.strip()
            if not equals or not name:
                continue
            value = value.strip()
            if len(value) >= 2 and value[0] == value[-1] == '"':
                value = value[1:-1]
            cookies[name] = value
    return cookies


def _dynamodb_item(item: object) -> dict[str, Any] | None:
    """A DynamoDB item in typed JSON (``{"S": "x"}``) as plain Python values."""
    if not isinstance(item, dict):
        return None
    return {name: _dynamodb_value(value) for name, value in item.items()}


def _dynamodb_value(value: object) -> Any:
    if not isinstance(value, dict) or len(value) != 1:
        return value
    ((kind, data),) = value.items()
    if kind == "S" or kind == "BOOL":
        return data
    if kind == "NULL":
        return None
    if kind == "N":
        from decimal import Decimal, InvalidOperation

        try:
            return Decimal(data)
        except (InvalidOperation, TypeError):
            return data
    if kind == "B":
        return _dynamodb_binary(data)
    if kind == "M":
        return _dynamodb_item(data) if isinstance(data, dict) else data
    if kind == "L":
        return [_dynamodb_value(v) for v in data] if isinstance(data, list) else data
    if kind in ("SS", "NS", "BS") and isinstance(data, list):
        element = kind[0]
        try:
            return {_dynamodb_value({element: v}) for v in data}
        except TypeError:  # an unhashable element: not a valid set
            return data
    return value


def _dynamodb_binary(data: object) -> object:
    import binascii

    if not isinstance(data, str):
        return data
    try:
        return binascii.a2b_base64(data)
    except binascii.Error:
        return data


# ---------------------------------------------------------------------------
# Routing: HTTP routes and event-source routes, guard, middleware, CORS
# ---------------------------------------------------------------------------

_HTTP_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
# Sources whose records `Router` hands one by one and reports as a batch.
_BATCH_IDENTIFIERS = {
    "sqs": "message_id",
    "kinesis": "sequence_number",
    "dynamodb": "sequence_number",
}
# Streams and FIFO queues keep order: after a failed record, the rest wait.
_ORDERED_SOURCES = ("kinesis", "dynamodb")


class _Inherit:
    """The marker of a route that takes the router's guard."""


_INHERIT = _Inherit()

if TYPE_CHECKING:
    # A route's guard: the router's (_INHERIT), another, or none.
    _Guard = Callable[[Any], Any] | _Inherit | None


class Cors:
    """The CORS policy of a `Router`: which browser origins may call the API.

    ``allow_origins``: the origins allowed (``"https://app.example.com"``),
    or ``"*"`` for any. ``allow_headers``: the request headers a browser may
    send beyond the simple ones (``Authorization``, ``Content-Type``...);
    ``expose_headers``: the response headers its scripts may read;
    ``allow_credentials``: whether cookies and credentials may go along
    (then the caller's origin is echoed, never ``*``); ``max_age``: seconds a
    browser may cache a preflight answer.

    A preflight (``OPTIONS`` with ``Origin`` and
    ``Access-Control-Request-Method``) of a path that exists is answered 204
    with the methods of that path; other responses to an allowed origin get
    ``Access-Control-Allow-Origin`` and ``Vary: Origin``. A request from an
    origin not allowed gets no CORS header: the browser then refuses it.
    """

    __slots__ = (
        "allow_credentials",
        "allow_headers",
        "allow_origins",
        "expose_headers",
        "max_age",
    )

    def __init__(
        self,
        allow_origins: str | list[str] | tuple[str, ...] = "*",
        *,
        allow_headers: list[str] | tuple[str, ...] = ("Authorization", "Content-Type"),
        expose_headers: list[str] | tuple[str, ...] = (),
        allow_credentials: bool = False,
        max_age: int | None = None,
    ) -> None:
        origins = (allow_origins,) if isinstance(allow_origins, str) else allow_origins
        for origin in origins:
            if origin != "*" and (
                not origin.startswith(("http://", "https://")) or origin.endswith("/")
            ):
                raise ValueError(
                    f"allow_origins holds {origin!r}: an origin is a scheme and a host, "
                    f"e.g. 'https://app.example.com', or '*'"
                )
        if max_age is not None and (isinstance(max_age, bool) or max_age < 0):
            raise ValueError(f"max_age must be seconds >= 0, not {max_age!r}")
        self.allow_origins = frozenset(origins)
        self.allow_headers = tuple(allow_headers)
        self.expose_headers = tuple(expose_headers)
        self.allow_credentials = allow_credentials
        self.max_age = max_age

    def allowed_origin(self, origin: str | None) -> str | None:
        """The ``Access-Control-Allow-Origin`` value for ``origin``, or None."""
        if not origin:
            return None
        if origin in self.allow_origins:
            return origin
        if "*" in self.allow_origins:
            return origin if self.allow_credentials else "*"
        return None


class RouteNotFound(LookupError):
    """An event that no route of a `Router` takes (not an HTTP request: those get 404).

    Raised rather than dropping the event, so Lambda retries it or sends it
    to the function's dead-letter queue or on-failure destination.
    """


class BatchFailed(Exception):
    """Every record of a batch failed: raised so that the whole batch is retried.

    It is retried even when the event source mapping does not report batch
    item failures. ``errors`` holds each record's exception, in order.
    """

    def __init__(self, source: str, errors: list[BaseException]) -> None:
        super().__init__(
            f"all {len(errors)} records of the {source} batch failed; "
            f"first error: {errors[0]!r}"
        )
        self.errors = errors


class Router:
    """Routes each event to the function registered for it.

    ::

        app = Router(cors=Cors("https://app.example.com"))

        @app.get("/orders/{order_id}")
        def get_order(order_id: str) -> dict[str, Any]:
            return orders.load(order_id)            # 200, JSON

        @app.post("/orders")
        def create_order(request: HttpRequest) -> tuple[dict[str, Any], int]:
            return orders.create(request.json), 201

        @app.sqs("orders")
        def order_placed(record: SqsRecord) -> None:
            ship(record.json)                       # raising fails this record

        def handler(event, context):
            return app.resolve(event, context)

    **HTTP routes.** ``@app.get(path)`` and ``post``, ``put``, ``patch``,
    ``delete``, ``head``, ``options``, or ``@app.route(methods, path)``
    (``"ANY"`` for every method). A path is ``/``-separated segments, each
    plain, a parameter ``{name}``, or, last, a greedy ``{name+}`` taking one
    or more segments. The function receives the path parameters its
    signature names (as strings) and, when it has a parameter called
    ``request``, the `HttpRequest`. A trailing slash is ignored: ``/orders/``
    is ``/orders``.

    Precedence: a plain segment beats a parameter, which beats a greedy one;
    among the paths that match, the most specific one that has the method
    wins. No path: 404. A path without the method: 405 with ``Allow``. HEAD
    runs the GET route without the body; OPTIONS answers the CORS preflight,
    or 204 with ``Allow``, unless routed. A method, path or body that cannot
    be read is a 400.

    **Return values.** A `Response`; a dict, list, dataclass or model (JSON,
    200); a string (text, 200); bytes (binary, 200); None (204); or
    ``(body, status)`` / ``(body, status, headers)``. Raise `HTTPError` for
    an error response; errors collected with `collect` during the request
    raise the status and join the body (see `ErrorCollector`). Any other
    exception is logged once with its traceback and answered 500 with the
    request id only. ``error_handler`` registers answers for exception types.

    **Event-source routes.** ``@app.sqs(queue)``, ``@app.kinesis(stream)``,
    ``@app.dynamodb(table)``: the function gets each record; a record whose
    function raises is reported in ``batchItemFailures`` (enable
    ``ReportBatchItemFailures`` on the event source mapping, or Lambda
    deletes the whole batch), and if every record fails, `BatchFailed` is
    raised. Streams and FIFO queues stop at the first failure: the records
    after it are reported too, and come again in order. ``@app.s3(token)``
    (``token``: the bucket name before its first ``.``, so
    ``uploads.prod.example.com`` is ``uploads``; ``s3_token=`` replaces
    that rule), ``@app.sns(topic)``, ``@app.eventbridge(source=...,
    detail_type=...)`` and ``@app.direct()`` get the record or event; their
    exceptions propagate, so Lambda retries. Without a name, a route takes
    the source's records that no named route takes. An event that no route
    takes raises `RouteNotFound`.

    **Guard and middleware.** ``guard(view)`` runs before every function
    (``guard=`` per route replaces it, ``guard=None`` drops it): it returns
    None to let the function run, anything else to answer in its place, or
    raises (`HTTPError` for an HTTP answer). ``app.use(middleware)`` adds
    ``middleware(view, call_next)``, which calls ``call_next(view)`` to go on
    (the first added runs first) and returns its answer or another: for
    HTTP, ``call_next`` returns a `Response`. Middleware runs before the
    guard, so it can set ``request.claims`` from a token for the guard to
    decide on.

    **Logging.** `resolve` makes the context the current invocation's when
    the handler is not decorated with `inject_request_ids_into_environment`,
    so every line of the request has the request ids and ``cold_start``;
    ``route`` (the route's template) is bound too. The router's own lines
    carry ``status``: ``log_requests=True`` logs one line per HTTP request
    (method, path, route, status, duration_ms) at INFO, and an unexpected
    exception is logged with its traceback and status 500.
    """

    def __init__(
        self,
        *,
        cors: Cors | None = None,
        guard: Callable[[Any], Any] | None = None,
        strip_prefixes: list[str] | tuple[str, ...] = (),
        s3_token: Callable[[S3Record], str] | None = None,
        log_requests: bool = False,
        report_errors: bool = True,
        logger: Logger | logging.Logger | None = None,
    ) -> None:
        for prefix in strip_prefixes:
            if not prefix.startswith("/") or prefix.endswith("/"):
                raise ValueError(
                    f"strip_prefixes holds {prefix!r}: a prefix starts with '/' "
                    f"and does not end with one, e.g. '/api'"
                )
        self.cors = cors
        self.guard = guard
        self.strip_prefixes = tuple(strip_prefixes)
        self.s3_token = s3_token or _bucket_token
        self.log_requests = log_requests
        self.report_errors = report_errors
        self.logger = (
            logger
            if isinstance(logger, Logger)
            else Logger(logger or logging.getLogger("fleece_runtime.router"))
        )
        self._static: dict[str, _PathNode] = {}
        self._tree = _PathNode("/")
        self._event_routes: dict[tuple[str, str | None], _Route] = {}
        self._eventbridge: list[tuple[str | None, str | None, _Route]] = []
        self._middleware: list[Callable[[Any, Callable[[Any], Any]], Any]] = []
        self._error_handlers: dict[type[BaseException], Callable[[Any, Any], Any]] = {}

    def resolve(self, event: object, context: Any = None) -> Any:
        """Answer ``event``: the dict its source expects, or the batch result.

        HTTP requests get the shape of their source: REST (``multiValueHeaders``),
        HTTP API and function URLs (``cookies``), ALB (its multi-value setting,
        ``statusDescription``); ``isBase64Encoded`` for binary bodies. SQS,
        Kinesis and DynamoDB batches get ``{"batchItemFailures": [...]}``;
        direct invocations what their function returns; S3, SNS and
        EventBridge None.
        """
        view = parse_event(event, context)
        # An HTTP request's route is found first: it goes on every log line.
        found = self._match(view) if isinstance(view, HttpRequest) else None
        route = None if found is None or found[1] is None else found[1].template
        if context is not None and _scope.get()[0] is context:
            # The invocation is the decorated handler's: the route joins it.
            if route is not None:
                bind(route=route)
            return self._answer(view, found)
        # What `inject_request_ids_into_environment` does around a handler.
        started = _start_invocation(event, context, route)
        try:
            return self._answer(view, found)
        finally:
            _scope.reset(started)

    def route(
        self,
        methods: str | list[str] | tuple[str, ...],
        path: str,
        *,
        guard: _Guard = _INHERIT,
    ) -> Callable[[Callable[_P, _R]], Callable[_P, _R]]:
        """Decorator: the function answers ``methods`` (a name, a list, or ``"ANY"``) on ``path``."""
        names = (methods,) if isinstance(methods, str) else tuple(methods)
        wanted = [name.upper() for name in names]
        if "ANY" in wanted:
            wanted = list(_HTTP_METHODS)
        for name in wanted:
            if name not in _HTTP_METHODS:
                raise ValueError(
                    f"unknown HTTP method {name!r}: use one of {', '.join(_HTTP_METHODS)} or ANY"
                )
        if not wanted:
            raise ValueError("a route needs at least one method")
        segments = _route_segments(path)

        def register(func: Callable[_P, _R]) -> Callable[_P, _R]:
            params = [
                segment.strip("{}+") for segment in segments if segment.startswith("{")
            ]
            route = _Route(func, guard, _template(segments), params, "request")
            node = self._tree.insert(segments)
            for name in wanted:
                if name in node.routes:
                    raise ValueError(f"{name} {route.template} is routed twice")
                node.routes[name] = route
            if not params:
                self._static[route.template] = node
            return func

        return register

    def get(
        self, path: str, *, guard: _Guard = _INHERIT
    ) -> Callable[[Callable[_P, _R]], Callable[_P, _R]]:
        """Decorator: the function answers GET (and HEAD) on ``path``."""
        return self.route("GET", path, guard=guard)

    def post(
        self, path: str, *, guard: _Guard = _INHERIT
    ) -> Callable[[Callable[_P, _R]], Callable[_P, _R]]:
        """Decorator: the function answers POST on ``path``."""
        return self.route("POST", path, guard=guard)

    def put(
        self, path: str, *, guard: _Guard = _INHERIT
    ) -> Callable[[Callable[_P, _R]], Callable[_P, _R]]:
        """Decorator: the function answers PUT on ``path``."""
        return self.route("PUT", path, guard=guard)

    def patch(
        self, path: str, *, guard: _Guard = _INHERIT
    ) -> Callable[[Callable[_P, _R]], Callable[_P, _R]]:
        """Decorator: the function answers PATCH on ``path``."""
        return self.route("PATCH", path, guard=guard)

    def delete(
        self, path: str, *, guard: _Guard = _INHERIT
    ) -> Callable[[Callable[_P, _R]], Callable[_P, _R]]:
        """Decorator: the function answers DELETE on ``path``."""
        return self.route("DELETE", path, guard=guard)

    def head(
        self, path: str, *, guard: _Guard = _INHERIT
    ) -> Callable[[Callable[_P, _R]], Callable[_P, _R]]:
        """Decorator: the function answers HEAD on ``path`` (GET routes do by default)."""
        return self.route("HEAD", path, guard=guard)

    def options(
        self, path: str, *, guard: _Guard = _INHERIT
    ) -> Callable[[Callable[_P, _R]], Callable[_P, _R]]:
        """Decorator: the function answers OPTIONS on ``path`` (CORS preflights included)."""
        return self.route("OPTIONS", path, guard=guard)

    def sqs(
        self,
        queue: str | None = None,
        *,
        guard: _Guard = _INHERIT,
    ) -> Callable[[Callable[_P, _R]], Callable[_P, _R]]:
        """Decorator: the function processes each message of ``queue`` (its name; None: any queue)."""
        return self._event_route("sqs", queue, guard)

    def kinesis(
        self,
        stream: str | None = None,
        *,
        guard: _Guard = _INHERIT,
    ) -> Callable[[Callable[_P, _R]], Callable[_P, _R]]:
        """Decorator: the function processes each record of ``stream`` (None: any stream)."""
        return self._event_route("kinesis", stream, guard)

    def dynamodb(
        self,
        table: str | None = None,
        *,
        guard: _Guard = _INHERIT,
    ) -> Callable[[Callable[_P, _R]], Callable[_P, _R]]:
        """Decorator: the function processes each stream record of ``table`` (None: any table)."""
        return self._event_route("dynamodb", table, guard)

    def s3(
        self,
        token: str | None = None,
        *,
        guard: _Guard = _INHERIT,
    ) -> Callable[[Callable[_P, _R]], Callable[_P, _R]]:
        """Decorator: the function processes each S3 record whose bucket token is ``token``.

        The token is the bucket name before its first ``.`` (or what the
        router's ``s3_token`` returns for the record); None: any bucket.
        """
        return self._event_route("s3", token, guard)

    def sns(
        self,
        topic: str | None = None,
        *,
        guard: _Guard = _INHERIT,
    ) -> Callable[[Callable[_P, _R]], Callable[_P, _R]]:
        """Decorator: the function processes each message of ``topic`` (its name; None: any topic)."""
        return self._event_route("sns", topic, guard)

    def eventbridge(
        self,
        *,
        source: str | None = None,
        detail_type: str | None = None,
        guard: _Guard = _INHERIT,
    ) -> Callable[[Callable[_P, _R]], Callable[_P, _R]]:
        """Decorator: the function gets EventBridge events of ``source`` and ``detail_type``.

        Either may be None (any). A route naming both beats one naming one,
        which beats one naming none; among equals, the first registered.
        """

        def register(func: Callable[_P, _R]) -> Callable[_P, _R]:
            route = _Route(
                func,
                guard,
                f"eventbridge {source or '*'} {detail_type or '*'}",
                [],
                None,
            )
            self._eventbridge.append((source, detail_type, route))
            self._eventbridge.sort(
                key=lambda entry: (entry[0] is None) + (entry[1] is None)
            )
            return func

        return register

    def direct(
        self, *, guard: _Guard = _INHERIT
    ) -> Callable[[Callable[_P, _R]], Callable[_P, _R]]:
        """Decorator: the function answers direct invocations; it gets the `DirectInvocation`."""
        return self._event_route("direct", None, guard)

    def use(
        self, middleware: Callable[[Any, Callable[[Any], Any]], Any]
    ) -> Callable[[Any, Callable[[Any], Any]], Any]:
        """Add ``middleware(view, call_next)`` around every routed function; returns it."""
        self._middleware.append(middleware)
        return middleware

    def error_handler(
        self, *types: type[BaseException]
    ) -> Callable[[Callable[_P, _R]], Callable[_P, _R]]:
        """Decorator: ``func(request, error)`` answers HTTP requests whose function raised one of ``types``.

        Its return value is answered as a route's; the nearest type in the
        exception's class hierarchy wins. An `HTTPError` always answers
        itself: it never reaches these functions.
        """
        if not types:
            raise ValueError("error_handler needs at least one exception type")

        def register(func: Callable[_P, _R]) -> Callable[_P, _R]:
            for kind in types:
                self._error_handlers[kind] = func
            return func

        return register

    # -- resolving ---------------------------------------------------------

    def _answer(self, view: Event, found: _Match | None) -> Any:
        if isinstance(view, HttpRequest):
            return self._http(view, found)
        if isinstance(view, (SqsEvent, KinesisEvent, DynamoDBStreamEvent)):
            return self._batch(view)
        if isinstance(view, (S3Event, SnsEvent)):
            for record in view.records:
                self._call(self._record_route(view.source, record), record)
            return None
        if isinstance(view, EventBridgeEvent):
            return self._call(self._eventbridge_route(view), view)
        route = self._event_routes.get(("direct", None))
        if route is None:
            raise RouteNotFound("no route takes direct invocations: add @app.direct()")
        return self._call(route, view)

    def _http(self, request: HttpRequest, found: _Match | None) -> dict[str, Any]:
        started = time.perf_counter() if self.log_requests else 0.0
        response = self._http_response(request, found)
        try:
            result = response.render(request)
        except Exception as error:  # noqa: BLE001 (a body JSON cannot hold)
            response = self._failure(request, error)
            result = response.render(request)
        if self.log_requests:
            self.logger.info(
                "request",
                method=request.method,
                path=request.path,
                route=request.route,
                status=response.status_code,
                duration_ms=round((time.perf_counter() - started) * 1000, 3),
            )
        if request.method == "HEAD":  # the GET route's headers, no body
            result["body"], result["isBase64Encoded"] = "", False
        return result

    def _match(self, request: HttpRequest) -> _Match | None:
        """The route of ``request`` (set on it), its node and parameters; None: no method or path.

        No route: the node of the path (405) or None (404).
        """
        method, path = request.method, request.path
        if not method or not path.startswith("/"):
            return None
        for prefix in self.strip_prefixes:
            if path == prefix or path.startswith(prefix + "/"):
                path = request.path = path[len(prefix) :] or "/"
                break
        if len(path) > 1 and path.endswith("/"):
            path = path[:-1]
        node = self._static.get(path)
        route = None if node is None else node.route_for(method)
        params: dict[str, str] = {}
        if route is None:
            node, route, params = self._tree.find(path, method)
        if route is not None:
            request.route = route.template
            request.path_params = params
        return node, route, params

    def _http_response(self, request: HttpRequest, found: _Match | None) -> Response:
        if found is None:
            return HTTPError(400, "the request has no method or path").response()
        node, route, params = found
        if route is None:
            if node is None:
                return self._finish(request, HTTPError(404).response())
            if request.method == "OPTIONS":
                return self._options(request, node)
            allow = {"Allow": ", ".join(node.allowed())}
            return self._finish(request, HTTPError(405, headers=allow).response())
        with ErrorCollector() as collector:
            try:
                response = Response.of(self._call(route, request, params))
                if collector.errors:
                    response = collector.apply(response, report=self.report_errors)
            except HTTPError as error:
                response = error.response()
            except Exception as error:  # noqa: BLE001 (every failure becomes an answer)
                response = self._failure(request, error)
        return response if self.cors is None else self._finish(request, response)

    def _finish(self, request: HttpRequest, response: Response) -> Response:
        """Add the CORS headers an allowed origin gets."""
        cors = self.cors
        if cors is None:
            return response
        origin = cors.allowed_origin(request.headers.get("origin"))
        if origin is None:
            return response
        headers = dict(response.headers)
        headers["Access-Control-Allow-Origin"] = origin
        if origin != "*":
            headers["Vary"] = "Origin"
        if cors.allow_credentials:
            headers["Access-Control-Allow-Credentials"] = "true"
        if cors.expose_headers:
            headers["Access-Control-Expose-Headers"] = ", ".join(cors.expose_headers)
        return Response(response.status_code, response.body, headers, response.cookies)

    def _options(self, request: HttpRequest, node: _PathNode) -> Response:
        """OPTIONS on a path without an OPTIONS route: a preflight, or the methods."""
        allowed = node.allowed()
        cors = self.cors
        headers = request.headers
        if cors is None or "access-control-request-method" not in headers:
            return self._finish(
                request, Response(204, None, {"Allow": ", ".join(allowed)})
            )
        origin = cors.allowed_origin(headers.get("origin"))
        if origin is None:
            return Response(204, None, {"Allow": ", ".join(allowed)})
        answer = {
            "Access-Control-Allow-Origin": origin,
            "Access-Control-Allow-Methods": ", ".join(allowed),
            "Access-Control-Allow-Headers": ", ".join(cors.allow_headers),
            "Vary": "Origin",
        }
        if cors.allow_credentials:
            answer["Access-Control-Allow-Credentials"] = "true"
        if cors.max_age is not None:
            answer["Access-Control-Max-Age"] = str(cors.max_age)
        return Response(204, None, answer)

    def _failure(self, request: HttpRequest, error: Exception) -> Response:
        """The answer to an exception that is not an `HTTPError`."""
        for kind in type(error).__mro__:
            handler = self._error_handlers.get(kind)
            if handler is not None:
                try:
                    return Response.of(handler(request, error))
                except HTTPError as refined:
                    return refined.response()
                except Exception as failed:  # noqa: BLE001
                    error = failed
                break
        self.logger.exception(
            "unhandled exception", exc_info=error, route=request.route, status=500
        )
        return _internal_error(request)

    def _call(
        self, route: _Route, view: Any, params: dict[str, str] | None = None
    ) -> Any:
        """Run the middleware, the guard and the route's function for ``view``."""
        guard = self.guard if route.guard is _INHERIT else route.guard
        if not self._middleware:
            return route.run(view, guard, params)
        call: Callable[[Any], Any] = functools.partial(
            route.run, guard=guard, params=params
        )
        if isinstance(view, HttpRequest):
            inner = call

            def call(request: Any) -> Any:
                try:
                    return Response.of(inner(request))
                except HTTPError as error:
                    return error.response()

        for middleware in reversed(self._middleware):
            call = _calling(middleware, call)
        return call(view)

    def _batch(
        self, batch: SqsEvent | KinesisEvent | DynamoDBStreamEvent
    ) -> dict[str, Any]:
        """Process each record; report the failed ones as ``batchItemFailures``."""
        source = batch.source
        identifier = _BATCH_IDENTIFIERS[source]
        records = batch.records
        errors: list[BaseException] = []
        failures: list[dict[str, str]] = []
        ordered = source in _ORDERED_SOURCES
        for index, record in enumerate(records):
            try:
                self._call(self._record_route(source, record), record)
            except RouteNotFound:
                raise
            except Exception as error:  # noqa: BLE001 (a failed record only)
                self.logger.exception(
                    "record failed",
                    exc_info=error,
                    source=source,
                    item=getattr(record, identifier),
                )
                errors.append(error)
                failures.append({"itemIdentifier": getattr(record, identifier)})
                if ordered or (
                    isinstance(record, SqsRecord) and record.queue.endswith(".fifo")
                ):
                    failures += [
                        {"itemIdentifier": getattr(rest, identifier)}
                        for rest in records[index + 1 :]
                    ]
                    break
        if records and len(failures) == len(records) and len(errors) == len(records):
            raise BatchFailed(source, errors)
        return {"batchItemFailures": failures}

    def _record_route(self, source: str, record: Any) -> _Route:
        if source == "s3":
            name = self.s3_token(record)
        elif source == "sqs":
            name = record.queue
        elif source == "sns":
            name = record.topic
        elif source == "dynamodb":
            name = record.table
        else:
            name = record.stream
        route = self._event_routes.get((source, name)) or self._event_routes.get(
            (source, None)
        )
        if route is None:
            raise RouteNotFound(
                f"no route takes {source} records of {name!r}: add @app.{source}({name!r})"
            )
        return route

    def _eventbridge_route(self, event: EventBridgeEvent) -> _Route:
        source, detail_type = event.event_source, event.detail_type
        for wanted_source, wanted_type, route in self._eventbridge:
            if wanted_source in (None, source) and wanted_type in (None, detail_type):
                return route
        raise RouteNotFound(
            f"no route takes EventBridge events of source {source!r} and detail-type "
            f"{detail_type!r}: add @app.eventbridge(source={source!r}, detail_type={detail_type!r})"
        )

    def _event_route(
        self,
        source: str,
        name: str | None,
        guard: _Guard,
    ) -> Callable[[Callable[_P, _R]], Callable[_P, _R]]:
        def register(func: Callable[_P, _R]) -> Callable[_P, _R]:
            if (source, name) in self._event_routes:
                raise ValueError(f"{source} {name or '*'} is routed twice")
            self._event_routes[(source, name)] = _Route(
                func, guard, f"{source} {name or '*'}", [], None
            )
            return func

        return register


class _Route:
    """A routed function and how to call it."""

    __slots__ = ("func", "guard", "params", "takes_request", "template")

    def __init__(
        self,
        func: Callable[..., Any],
        guard: _Guard,
        template: str,
        params: list[str],
        request_name: str | None,
    ) -> None:
        self.func = func
        self.guard = guard
        self.template = template
        if request_name is None:  # event routes: the record or event, positionally
            _refuse_async(func)
            self.params: tuple[str, ...] | None = None
            self.takes_request = False
            return
        accepted, takes_all = _parameters(func, template)
        unknown = [
            name
            for name in accepted
            if name not in params and name != request_name and accepted[name]
        ]
        if unknown:
            raise TypeError(
                f"{_name(func)} takes {', '.join(unknown)}, which {template} does not "
                f"give: its parameters are the path's ({', '.join(params) or 'none'}) "
                f"and 'request'"
            )
        self.params = (
            tuple(params) if takes_all else tuple(p for p in params if p in accepted)
        )
        self.takes_request = request_name in accepted or takes_all

    def run(
        self,
        view: Any,
        guard: _Guard,
        params: dict[str, str] | None,
    ) -> Any:
        if guard is not None and not isinstance(guard, _Inherit):
            answer = guard(view)
            if answer is not None:
                return answer
        if self.params is None:
            return self.func(view)
        arguments: dict[str, Any] = {}
        if params:
            for name in self.params:
                arguments[name] = params[name]
        if self.takes_request:
            arguments["request"] = view
        return self.func(**arguments)


class _PathNode:
    """One segment of the route tree: plain children, a parameter, a greedy tail."""

    __slots__ = ("children", "greedy", "param", "routes", "template")

    def __init__(self, template: str) -> None:
        self.template = template
        self.children: dict[str, _PathNode] = {}
        self.param: tuple[str, _PathNode] | None = None
        self.greedy: tuple[str, _PathNode] | None = None
        self.routes: dict[str, _Route] = {}

    def insert(self, segments: list[str]) -> _PathNode:
        node = self
        for segment in segments:
            if segment.endswith("+}"):
                name = segment[1:-2]
                if node.greedy is None:
                    node.greedy = (name, _PathNode(segment))
                elif node.greedy[0] != name:
                    raise ValueError(
                        f"{{{node.greedy[0]}+}} and {segment} at the same place"
                    )
                node = node.greedy[1]
            elif segment.startswith("{"):
                name = segment[1:-1]
                if node.param is None:
                    node.param = (name, _PathNode(segment))
                elif node.param[0] != name:
                    raise ValueError(
                        f"{{{node.param[0]}}} and {segment} at the same place: a path "
                        f"parameter has one name whatever follows it"
                    )
                node = node.param[1]
            else:
                node = node.children.setdefault(segment, _PathNode(segment))
        return node

    def route_for(self, method: str) -> _Route | None:
        """The route of ``method`` here; HEAD falls back to GET."""
        route = self.routes.get(method)
        if route is None and method == "HEAD":
            return self.routes.get("GET")
        return route

    def find(
        self, path: str, method: str
    ) -> tuple[_PathNode | None, _Route | None, dict[str, str]]:
        """The most specific node with ``method``; else the most specific node, no route."""
        segments = path.split("/")[1:] if path != "/" else []
        # Usually one walk down, plain segments first, finds it: the path a
        # full search would also try first.
        node, params = self, {}
        for segment in segments:
            child = node.children.get(segment)
            if child is None:
                if node.param is None or not segment:
                    break
                name, child = node.param
                params[name] = segment
            node = child
        else:
            route = node.route_for(method)
            if route is not None:
                return node, route, params
        fallback: list[Any] = []
        found = self._search(segments, 0, {}, method, fallback)
        if found is not None:
            return found
        if fallback:
            return fallback[0], None, fallback[1]
        return None, None, {}

    def allowed(self) -> list[str]:
        """The methods of this path, as ``Allow`` lists them."""
        methods = set(self.routes)
        if "GET" in methods:
            methods.add("HEAD")
        methods.add("OPTIONS")
        return [method for method in _HTTP_METHODS if method in methods]

    def _search(
        self,
        segments: list[str],
        index: int,
        params: dict[str, str],
        method: str,
        fallback: list[Any],
    ) -> tuple[_PathNode, _Route, dict[str, str]] | None:
        """Depth first, plain children before the parameter before the greedy tail.

        ``fallback`` gets the first node that matched without the method.
        """
        if index == len(segments):
            return self._take(method, params, fallback) if self.routes else None
        segment = segments[index]
        child = self.children.get(segment)
        if child is not None:
            found = child._search(segments, index + 1, params, method, fallback)
            if found is not None:
                return found
        if not segment:
            return None
        if self.param is not None:
            name, node = self.param
            found = node._search(
                segments, index + 1, {**params, name: segment}, method, fallback
            )
            if found is not None:
                return found
        if self.greedy is not None and self.greedy[1].routes:
            name, node = self.greedy
            tail = {**params, name: "/".join(segments[index:])}
            return node._take(method, tail, fallback)
        return None

    def _take(
        self, method: str, params: dict[str, str], fallback: list[Any]
    ) -> tuple[_PathNode, _Route, dict[str, str]] | None:
        route = self.route_for(method)
        if route is not None:
            return self, route, params
        if not fallback:
            fallback += [self, params]
        return None


if TYPE_CHECKING:
    # What `Router._match` found: the path's node (None: no such path), the
    # route of the method (None: not allowed), the path parameters.
    _Match = tuple[_PathNode | None, _Route | None, dict[str, str]]


def _route_segments(path: str) -> list[str]:
    """The segments of a route's path; ``ValueError`` for a path that is not one."""
    if not isinstance(path, str) or not path.startswith("/"):
        raise ValueError(f"a route's path starts with '/', not {path!r}")
    trimmed = path[1:-1] if len(path) > 1 and path.endswith("/") else path[1:]
    segments = trimmed.split("/") if trimmed else []
    names: set[str] = set()
    for index, segment in enumerate(segments):
        if not segment:
            raise ValueError(f"{path!r} has an empty segment")
        if "{" not in segment and "}" not in segment:
            continue
        greedy = segment.endswith("+}")
        name = segment[1 : -2 if greedy else -1]
        if not (
            segment.startswith("{") and segment.endswith("}") and name.isidentifier()
        ):
            raise ValueError(
                f"{path!r}: {segment!r} is not a parameter; write a whole segment as "
                f"{{name}}, or {{name+}} for the rest of the path"
            )
        if greedy and index != len(segments) - 1:
            raise ValueError(f"{path!r}: a greedy {segment} must be the last segment")
        if name in names:
            raise ValueError(f"{path!r} names the parameter {name!r} twice")
        names.add(name)
    return segments


def _calling(
    middleware: Callable[[Any, Callable[[Any], Any]], Any],
    call_next: Callable[[Any], Any],
) -> Callable[[Any], Any]:
    """``middleware`` with the rest of the chain as its second argument."""

    def call(view: Any) -> Any:
        return middleware(view, call_next)

    return call


def _internal_error(request: HttpRequest) -> Response:
    """The 500 of an unexpected exception: nothing of it, only the request id."""
    context = request.context
    request_id = getattr(context, "aws_request_id", None) or request.request_id
    error: dict[str, Any] = {"code": 500, "message": "Internal Server Error"}
    if request_id:
        error["request_id"] = request_id
    return Response(500, {"error": error})


def _template(segments: list[str]) -> str:
    return "/" + "/".join(segments)


def _bucket_token(record: S3Record) -> str:
    """The default S3 token: the bucket name up to its first dot."""
    return record.bucket.partition(".")[0]


def _parameters(
    func: Callable[..., Any], template: str
) -> tuple[dict[str, bool], bool]:
    """The keyword parameters ``func`` accepts (name -> required) and whether it takes ``**kwargs``."""
    code = getattr(func, "__code__", None)
    if code is None or hasattr(func, "__wrapped__"):
        import inspect

        signature = inspect.signature(func)
        accepted: dict[str, bool] = {}
        takes_all = False
        for name, parameter in signature.parameters.items():
            if parameter.kind is parameter.VAR_KEYWORD:
                takes_all = True
            elif parameter.kind is parameter.POSITIONAL_ONLY:
                raise TypeError(
                    f"{_name(func)}: the route of {template} passes arguments by name; {name} is positional-only"
                )
            elif parameter.kind is not parameter.VAR_POSITIONAL:
                accepted[name] = parameter.default is parameter.empty
        return accepted, takes_all
    _refuse_async(func)
    if code.co_posonlyargcount:
        raise TypeError(
            f"{_name(func)}: the route of {template} passes arguments by name; it has positional-only parameters"
        )
    count = code.co_argcount + code.co_kwonlyargcount
    names = code.co_varnames[:count]
    defaults = len(getattr(func, "__defaults__", None) or ())
    kwdefaults = getattr(func, "__kwdefaults__", None) or {}
    positional = code.co_argcount
    accepted = {}
    for index, name in enumerate(names):
        if index < positional:
            accepted[name] = index < positional - defaults
        else:
            accepted[name] = name not in kwdefaults
    return accepted, bool(code.co_flags & 0x08)  # CO_VARKEYWORDS


def _refuse_async(func: Callable[..., Any]) -> None:
    code = getattr(func, "__code__", None)
    if code is not None and code.co_flags & 0x80:  # CO_COROUTINE
        raise TypeError(f"{_name(func)} is async: Router calls plain functions")


def _name(func: object) -> str:
    return str(
        getattr(func, "__qualname__", None) or getattr(func, "__name__", None) or func
    )


# ---------------------------------------------------------------------------
# Responses and errors: Response, HTTPError, the error collector, log_method
# ---------------------------------------------------------------------------

# The phrases of fleece 1.x (Python 3.9's), where later Pythons renamed them:
# the text of an HTTPError stays the same on every Python.
_PHRASES_1X = {
    413: "Request Entity Too Large",
    414: "Request-URI Too Long",
    416: "Requested Range Not Satisfiable",
    418: "I'm a teapot",
    422: "Unprocessable Entity",
}
# Content types whose bytes are sent as text when they are UTF-8.
_TEXT_TYPES = (
    "text/",
    "application/json",
    "application/problem+json",
    "application/xml",
    "application/javascript",
    "application/x-www-form-urlencoded",
    "application/yaml",
    "image/svg+xml",
)

if TYPE_CHECKING:
    from collections.abc import Coroutine
    from typing import overload


_NO_HEADERS: Mapping[str, str | list[str]] = MappingProxyType({})

# The collector of the request or root scope running in this thread or task.
_error_collector: contextvars.ContextVar[ErrorCollector | None] = (
    contextvars.ContextVar("fleece_error_collector", default=None)
)


class Response:
    """An HTTP response: ``status_code``, ``body``, ``headers``, ``cookies``.

    ``body``: None (no body), text, bytes, or any value `JsonEncoder`
    writes (dicts, lists, dataclasses, models...), sent as JSON.
    ``headers``: name -> value, or a list of values. ``cookies``: the
    ``Set-Cookie`` values. Without a ``Content-Type`` header, JSON bodies
    are ``application/json``, text ``text/plain; charset=utf-8`` and bytes
    ``application/octet-stream``. Bytes go base64-encoded
    (``isBase64Encoded``) unless their content type is text and they are
    UTF-8; on a REST API, binary responses need the API's binary media
    types.
    """

    __slots__ = ("body", "cookies", "headers", "status_code")

    def __init__(
        self,
        status_code: int = 200,
        body: object = None,
        headers: Mapping[str, str | list[str]] | None = None,
        cookies: Sequence[str] | None = None,
    ) -> None:
        self.status_code = status_code
        self.body = body
        self.headers: Mapping[str, str | list[str]] = headers or _NO_HEADERS
        self.cookies: Sequence[str] = cookies or ()

    def __repr__(self) -> str:
        return f"<Response {self.status_code}>"

    @classmethod
    def of(cls, value: object) -> Response:
        """What a route returned, as a `Response`.

        A `Response` as it is; ``(body, status)`` or ``(body, status,
        headers)``; None: 204; anything else: 200 with that body.
        """
        if isinstance(value, Response):
            return value
        if value is None:
            return cls(204)
        if (
            isinstance(value, tuple)
            and 2 <= len(value) <= 3
            and isinstance(value[1], int)
        ):
            headers = value[2] if len(value) == 3 else None
            return cls(value[1], value[0], headers)
        return cls(200, value)

    def render(self, request: HttpRequest) -> dict[str, Any]:
        """This response as the dict a handler returns to answer ``request``.

        The shape of the request's source: REST APIs get
        ``multiValueHeaders``; HTTP APIs and function URLs ``headers``
        (repeated headers joined by ``,``) and ``cookies``; ALB the headers
        its target group uses, and ``statusDescription``.
        """
        body, is_base64, content_type = self._encoded()
        headers: dict[str, list[str]] = {}
        cookies = self.cookies
        given = self.headers
        if content_type and not (given and _header(given, "content-type")):
            headers["Content-Type"] = [content_type]
        if given:
            for name, value in given.items():
                values = (
                    [str(v) for v in value] if isinstance(value, list) else [str(value)]
                )
                headers[name] = headers[name] + values if name in headers else values
            cookies = [*cookies] + [
                cookie
                for name in [n for n in headers if n.lower() == "set-cookie"]
                for cookie in headers.pop(name)
            ]
        source = request.source
        result: dict[str, Any] = {"statusCode": self.status_code}
        if source in ("api_gateway_http", "function_url"):
            result["headers"] = {name: ",".join(v) for name, v in headers.items()}
            if cookies:
                result["cookies"] = list(cookies)
        else:
            if cookies:
                headers["Set-Cookie"] = list(cookies)
            if source != "alb":
                result["multiValueHeaders"] = headers
            else:
                result["statusDescription"] = (
                    f"{self.status_code} {_phrase(self.status_code)}"
                )
                if isinstance(request, AlbRequest) and request.multi_value:
                    result["multiValueHeaders"] = headers
                else:  # single-value target groups keep a header's last value
                    result["headers"] = {name: v[-1] for name, v in headers.items()}
        result["body"] = body
        result["isBase64Encoded"] = is_base64
        return result

    def _encoded(self) -> tuple[str, bool, str | None]:
        """(body text, whether base64, default content type) of the body."""
        body = self.body
        if type(body) is dict or type(body) is list:  # most routes' answer
            return json_dumps(body), False, "application/json"
        if body is None:
            return "", False, None
        if isinstance(body, str):
            return body, False, "text/plain; charset=utf-8"
        if isinstance(body, (bytes, bytearray, memoryview)):
            data = bytes(body)
            content_type = _header(self.headers, "content-type")
            if content_type is not None and content_type.lower().startswith(
                _TEXT_TYPES
            ):
                try:
                    return data.decode("utf-8"), False, None
                except UnicodeDecodeError:
                    pass
            import binascii

            text = binascii.b2a_base64(data, newline=False).decode("ascii")
            return text, True, "application/octet-stream"
        return json_dumps(body), False, "application/json"


class HTTPError(Exception):
    """An error with an HTTP status: raise it in a route for an error response.

    ``HTTPError(404, "Nothing Here")``: ``status_code`` 404, ``str()``
    ``404: Not Found - Nothing Here`` (fleece 1.x's ``fleece.httperror``,
    the same text on every Python). ``details`` (any JSON value) and
    ``classification`` (a `Classification`; ``NA`` by default) follow the
    error into its response and the error collector; ``headers`` go on the
    response (``WWW-Authenticate``, ``Retry-After``...). Without a status,
    ``default_status`` (500; subclasses may change it).

    Its response: ``{"error": {"code": 404, "message": "Nothing Here",
    "details": ...}}``, the message being the status's phrase when none was
    given.
    """

    default_status = 500

    def __init__(
        self,
        status: int | None = None,
        message: str | None = None,
        details: object = None,
        classification: Classification | str = Classification.NA,
        *,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.status_code = int(status or self.default_status)
        self.message = message
        self.details = details
        self.classification = classification
        self.headers = dict(headers or {})
        text = f"{self.status_code:d}: {_phrase(self.status_code)}"
        super().__init__(f"{text} - {message}" if message else text)

    @property
    def status(self) -> int:
        """The HTTP status code (the same as ``status_code``)."""
        return self.status_code

    @property
    def reason(self) -> str:
        """The status's reason phrase (``Not Found``)."""
        return _phrase(self.status_code)

    def response(self) -> Response:
        """The response that answers this error."""
        error: dict[str, Any] = {
            "code": self.status_code,
            "message": self.message or _phrase(self.status_code),
        }
        if self.details is not None:
            error["details"] = self.details
        return Response(self.status_code, {"error": error}, self.headers)


class ErrorCollector:
    """The errors gathered by `collect` while a request (or a root scope) runs.

    ``errors``: the `HTTPError`s, in order. `status` is the highest of their
    status codes. `apply` merges them into a response, as `Router` does at
    the end of each HTTP request: the status becomes the highest of the
    response's and the errors', and a JSON object body (or an empty one)
    gets an ``error`` list, one entry per error: ``{"code": 400, "msg":
    "...", "classification": "NA", "details": ...}`` (pypwext's shape).
    Clear it (`clear`) to answer as if nothing had been collected.
    """

    __slots__ = ("_token", "errors")

    def __init__(self) -> None:
        self.errors: list[HTTPError] = []

    def __repr__(self) -> str:
        return f"<ErrorCollector {len(self.errors)} errors>"

    def __enter__(self) -> Self:
        """Install this collector for the block: what ``collect(root=True)`` does."""
        self._token = _error_collector.set(self)
        return self

    def __exit__(self, *exc: object) -> None:
        _error_collector.reset(self._token)
        if self.errors:
            outer = _error_collector.get()
            if outer is not None:
                outer.errors += self.errors

    def add(self, error: HTTPError) -> None:
        """Collect ``error``."""
        self.errors.append(error)

    def clear(self) -> None:
        """Forget the errors collected so far."""
        self.errors.clear()

    @property
    def status(self) -> int | None:
        """The highest status code collected, None when nothing was."""
        return max((error.status_code for error in self.errors), default=None)

    def entries(self) -> list[dict[str, Any]]:
        """The collected errors as the ``error`` list of a response body."""
        entries = []
        for error in self.errors:
            classification = error.classification
            entry: dict[str, Any] = {
                "code": error.status_code,
                "msg": error.message or _phrase(error.status_code),
                "classification": getattr(classification, "name", classification),
            }
            if error.details is not None:
                entry["details"] = error.details
            entries.append(entry)
        return entries

    def apply(self, response: Response, *, report: bool = True) -> Response:
        """``response`` with the collected errors' status, and their list unless ``report=False``."""
        if not self.errors:
            return response
        status = max(response.status_code, self.status or 0)
        body = response.body
        if report and (body is None or isinstance(body, dict)):
            body = {**(body or {}), "error": self.entries()}
        return Response(status, body, response.headers, response.cookies)


if TYPE_CHECKING:

    @overload
    def collect(
        func: Callable[_P, Coroutine[Any, Any, _R]], /
    ) -> Callable[_P, Coroutine[Any, Any, _R | None]]: ...
    @overload
    def collect(func: Callable[_P, _R], /) -> Callable[_P, _R | None]: ...
    @overload
    def collect(*, root: bool = False) -> _CollectScope: ...


def collect(func: Callable[_P, _R] | None = None, /, *, root: bool = False) -> Any:
    """Gather `HTTPError`s instead of stopping at the first (pypwext's ``errors.collect``).

    ``@collect`` on a function (or ``with collect():`` around a block): when
    it raises an `HTTPError` while a collector is installed, the error is
    added to that collector and the call returns None, so the caller goes
    on. With no collector installed, the error propagates as usual.

    ``@collect(root=True)`` (or ``with collect(root=True) as collector:``)
    installs a collector for the call or block; `Router` installs one for
    every HTTP request and merges what it gathered into the response (see
    `ErrorCollector`). An `HTTPError` raised by the root itself propagates;
    when a root ends inside another, what it still holds moves to the outer
    one. `get_current_collector` returns the collector in use. Collectors
    live in ``contextvars``: each thread and task has its own.
    """
    scope = _CollectScope(root)
    return scope if func is None else scope(func)


def get_current_collector() -> ErrorCollector | None:
    """The collector installed for the running request or root scope, or None."""
    return _error_collector.get()


if TYPE_CHECKING:

    @overload
    def log_method(func: Callable[_P, _R], /) -> Callable[_P, _R]: ...
    @overload
    def log_method(
        *,
        classification: Classification | str | None = None,
        operation: str | None = None,
        type: object = None,
        log_exception: bool = True,
        logger: Logger | logging.Logger | None = None,
    ) -> Callable[[Callable[_P, _R]], Callable[_P, _R]]: ...


def log_method(
    func: Callable[_P, _R] | None = None,
    /,
    *,
    classification: Classification | str | None = None,
    operation: str | None = None,
    type: object = None,
    log_exception: bool = True,
    logger: Logger | logging.Logger | None = None,
) -> Any:
    """Decorator: log each call of a function, its arguments and its result.

    ``@log_method`` or ``@log_method(classification=Classification.PII,
    operation="subscribe", type="AUDIT")`` logs ``Entering <name>`` at DEBUG
    with the ``arguments`` (by name), ``Exiting <name>`` at INFO with the
    ``result``, and, when the call raises, ``Exception in <name>`` at ERROR
    with the traceback (``log_exception=False``: not logged; raised all the
    same). An exception passing through several decorated functions is
    logged once, by the innermost. ``classification``, ``operation`` and
    ``type`` go on these lines only, never on later ones; a classification
    above the formatter's ``redact_above`` redacts the arguments and the
    result. ``logger``: the function's module logger by default.
    ``async def`` functions are logged around their awaited call.
    """
    fields: dict[str, Any] = {}
    if classification is not None:
        fields["classification"] = classification
    if operation is not None:
        fields["operation"] = operation
    if type is not None:
        fields["type"] = type

    def decorate(function: Callable[_P, _R]) -> Callable[_P, _R]:
        name = str(getattr(function, "__qualname__", None) or function)
        target = (
            logger
            if isinstance(logger, Logger)
            else Logger(
                logger
                or logging.getLogger(
                    getattr(function, "__module__", None) or "fleece_runtime"
                )
            )
        )
        describe = _argument_names(function)
        code = getattr(function, "__code__", None)
        if code is not None and code.co_flags & 0x80:  # CO_COROUTINE
            run: Any = function

            @functools.wraps(function)
            async def logged_async(*args: Any, **kwargs: Any) -> Any:
                if target.isEnabledFor(logging.DEBUG):
                    target.debug(
                        f"Entering {name}",
                        stacklevel=2,
                        arguments=describe(args, kwargs),
                        **fields,
                    )
                try:
                    result = await run(*args, **kwargs)
                except BaseException as error:
                    _log_once(target, error, name, log_exception, fields)
                    raise
                target.info(f"Exiting {name}", stacklevel=2, result=result, **fields)
                return result

            wrapped: Any = logged_async
            logged_coroutine: Callable[_P, _R] = wrapped
            return logged_coroutine

        @functools.wraps(function)
        def logged(*args: _P.args, **kwargs: _P.kwargs) -> _R:
            if target.isEnabledFor(logging.DEBUG):
                target.debug(
                    f"Entering {name}",
                    stacklevel=2,
                    arguments=describe(args, kwargs),
                    **fields,
                )
            try:
                result = function(*args, **kwargs)
            except BaseException as error:
                _log_once(target, error, name, log_exception, fields)
                raise
            target.info(f"Exiting {name}", stacklevel=2, result=result, **fields)
            return result

        return logged

    return decorate if func is None else decorate(func)


class _CollectScope:
    """What `collect` returns: a decorator and a context manager."""

    __slots__ = ("collector", "root")

    def __init__(self, root: bool) -> None:
        self.root = root
        self.collector: ErrorCollector | None = None

    def __call__(self, func: Callable[_P, _R]) -> Callable[_P, _R | None]:
        root = self.root
        code = getattr(func, "__code__", None)
        if code is not None and code.co_flags & 0x80:  # CO_COROUTINE
            run: Any = func

            @functools.wraps(func)
            async def collected_async(*args: Any, **kwargs: Any) -> Any:
                with _CollectScope(root):
                    return await run(*args, **kwargs)

            wrapped: Any = collected_async
            collected_coroutine: Callable[_P, _R | None] = wrapped
            return collected_coroutine

        @functools.wraps(func)
        def collected(*args: _P.args, **kwargs: _P.kwargs) -> _R | None:
            with _CollectScope(root):
                return func(*args, **kwargs)
            return None  # an error was collected

        return collected

    def __enter__(self) -> ErrorCollector:
        if self.root:
            self.collector = ErrorCollector().__enter__()
            return self.collector
        current = _error_collector.get()
        return current if current is not None else ErrorCollector()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> bool:
        if self.collector is not None:
            self.collector.__exit__(kind, error, traceback)
            return False
        current = _error_collector.get()
        if current is not None and isinstance(error, HTTPError):
            current.add(error)
            return True
        return False


def _phrase(status: int) -> str:
    """The reason phrase of ``status`` ("" for codes HTTP does not name)."""
    phrase = _PHRASES_1X.get(status)
    if phrase is not None:
        return phrase
    from http import HTTPStatus

    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""


def _header(headers: Mapping[str, str | list[str]], name: str) -> str | None:
    for key, value in headers.items():
        if key.lower() == name:
            return value[-1] if isinstance(value, list) else value
    return None


def _argument_names(
    func: Callable[..., Any],
) -> Callable[[tuple[Any, ...], dict[str, Any]], dict[str, Any]]:
    """A function giving a call's arguments by name (``self``/``cls`` left out)."""
    code = getattr(func, "__code__", None)
    names: tuple[str, ...] = (
        code.co_varnames[: code.co_argcount] if code is not None else ()
    )
    skip = 1 if names[:1] in (("self",), ("cls",)) else 0

    def describe(args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
        described = dict(zip(names[skip:], args[skip:], strict=False))
        if len(args) > len(names):
            described["args"] = list(args[len(names) :])
        described.update(kwargs)
        return described

    return describe


def _log_once(
    logger: Logger,
    error: BaseException,
    name: str,
    log_exception: bool,
    fields: dict[str, Any],
) -> None:
    """Log ``error`` unless a decorated function nearer to it already did."""
    if not log_exception or not isinstance(error, Exception):
        return
    if getattr(error, "_fleece_logged", False):
        return
    import contextlib

    with contextlib.suppress(AttributeError):  # an exception class with __slots__
        error._fleece_logged = True  # type: ignore[attr-defined]
    logger.error(f"Exception in {name}", exc_info=error, stacklevel=3, **fields)


class _HttpErrorNamespace:
    """HTTP errors, as ``from fleece_runtime import httperror`` (was ``fleece.httperror``)."""

    __slots__ = ()
    HTTPError = HTTPError


httperror = _HttpErrorNamespace()


# ---------------------------------------------------------------------------
# Apps: WSGI and ASGI apps, OpenAPI apps through connexion 3
# ---------------------------------------------------------------------------

# connexion apps built by `get_connexion_app`, by name (fleece 1.x's cache).
_connexion_apps: dict[str, Any] = {}
_asgi_loop: Any = None
# What fleece 1.x logged when an operation's response broke the spec.
_RESPONSE_CONTRACT_VIOLATION = "Response body does not conform to specification"


def wsgi_handler(
    event: object, context: Any, app: Callable[..., Any], logger: Any = None
) -> dict[str, Any]:
    """Serve an HTTP event with a WSGI app (Flask, Django...); the Lambda result.

    Works for API Gateway REST and HTTP APIs, ALB and function URLs, with the
    standard library only. The app sees the request as a WSGI server would
    pass it: ``SCRIPT_NAME`` is the stage on API Gateway's own domain (so
    the URLs it builds are right), ``REMOTE_ADDR`` the caller's address;
    ``environ["lambda.event"]`` and ``["lambda.context"]`` hold the event
    and the context. Its response comes back in the shape the source
    expects; binary bodies base64-encoded. An exception of the app is logged
    once and answered 500. ``logger`` (fleece 1.x's fourth argument): where
    that goes, the logger ``fleece_runtime.apps`` by default. An event that
    is not an HTTP request raises ``TypeError``.
    """
    request = _http_request(event, context, "wsgi_handler")
    target = _apps_logger(logger)
    try:
        environ = _wsgi_environ(request)
    except HTTPError as error:  # a body that cannot be read
        return error.response().render(request)
    started: list[Any] = []
    written: list[bytes] = []

    def start_response(
        status: str, headers: list[tuple[str, str]], exc_info: Any = None
    ) -> Callable[[bytes], None]:
        if started and exc_info is None:
            raise RuntimeError("start_response called twice without exc_info")
        started[:] = [status, headers]
        return written.append

    try:
        chunks = app(environ, start_response)
        try:
            body = b"".join([*written, *chunks])
        finally:
            close = getattr(chunks, "close", None)
            if close is not None:
                close()
        if not started:
            raise RuntimeError("the WSGI app returned without calling start_response")
    except Exception as error:  # noqa: BLE001 (the app's failure becomes a 500)
        target.exception("unhandled exception in the WSGI app", exc_info=error)
        return HTTPError(500).response().render(request)
    status, headers = started
    answer = _app_response(int(str(status).split(" ", 1)[0]), headers, body)
    return answer.render(request)


def build_wsgi_environ_from_event(event: object, context: Any = None) -> dict[str, Any]:
    """The WSGI environ of an HTTP event (fleece 1.x's name); see `wsgi_handler`."""
    return _wsgi_environ(_http_request(event, context, "build_wsgi_environ_from_event"))


def asgi_handler(
    event: object, context: Any, app: Callable[..., Any], logger: Any = None
) -> dict[str, Any]:
    """Serve an HTTP event with an ASGI app (connexion 3, Starlette, FastAPI); the Lambda result.

    The same sources and response shapes as `wsgi_handler`, with the
    standard library only: one event loop per process runs the app for each
    request (``root_path`` is the stage on API Gateway's own domain,
    ``scope["aws.event"]`` and ``["aws.context"]`` hold the event and the
    context). Lifespan events are not sent: build what the app needs when
    its module is imported. Call it from a plain (not ``async def``)
    handler. An exception of the app is logged once and answered 500.
    """
    return _serve_asgi(_http_request(event, context, "asgi_handler"), app, logger)


def get_connexion_app(
    app_name: str,
    app_swagger_path: str | os.PathLike[str],
    strict_validation: bool = True,
    validate_responses: bool = True,
    cache_app: bool = True,
    logger: Any = None,
    *,
    app_class: Any = None,
    cors: Cors | None = None,
    **api_options: Any,
) -> Any:
    """The connexion 3 app of the OpenAPI (or Swagger 2) spec at ``app_swagger_path``.

    Built once per process, and ready when this returns: call it at import
    of the handler's module, so the work is done in Lambda's init phase
    (where SnapStart captures it), not in the first request. With
    ``cache_app`` (fleece 1.x's default), the app of ``app_name`` is built
    once and returned again. ``strict_validation`` refuses parameters the
    spec does not name; ``validate_responses`` checks what the operations
    return (a mismatch is a 500).

    ``app_class``: `connexion.FleeceApp <_ConnexionNamespace.FleeceApp>`
    (fleece 1.x's class: connexion's ``FlaskApp`` when Flask is installed,
    so the operations may use ``flask.request`` as under connexion 1, else
    its ``AsyncApp``), or another connexion app class. ``cors``: the `Cors` policy
    of a `Router`, applied by Starlette's CORS middleware (connexion has
    none of its own). The Swagger UI is off (the ``swagger_ui_options``
    argument turns it on); ``api_options`` go to ``add_api``. An `HTTPError` raised by an operation is answered with its
    status as ``application/problem+json``; other exceptions are logged once
    by connexion and answered 500.

    The app has fleece 1.x's ``FleeceApp`` methods (an app of another
    class gets them too): ``app.call_api(event)`` and
    ``app.call_proxy_api(event)`` serve an event as `call_api` does,
    logging to ``logger`` (fleece 1.x's argument).
    """
    if cache_app and app_name in _connexion_apps:
        return _connexion_apps[app_name]
    spec = os.path.abspath(app_swagger_path)
    if not os.path.isfile(spec):
        raise FileNotFoundError(f"no OpenAPI spec at {spec}")
    fleece_app = _fleece_app_class()
    if app_class is None or (
        isinstance(app_class, type) and issubclass(app_class, fleece_app)
    ):
        app = (app_class or fleece_app)(
            app_name, specification_dir=os.path.dirname(spec), logger=logger, cors=cors
        )
    else:
        from connexion.options import SwaggerUIOptions  # imported: _fleece_app_class

        api_options.setdefault("swagger_ui_options", SwaggerUIOptions(swagger_ui=False))
        app = app_class(app_name, specification_dir=os.path.dirname(spec))
        _prepare_connexion_app(app, cors)

        def call_app(event: object, call_logger: Any = None) -> Any:
            return _call_connexion_app(
                app, event, logger if call_logger is None else call_logger
            )

        # fleece 1.x's FleeceApp methods, on the app class given.
        app.call_api = app.call_proxy_api = call_app
    app.add_api(
        os.path.basename(spec),
        strict_validation=strict_validation,
        validate_responses=validate_responses,
        **api_options,
    )
    if isinstance(app, fleece_app):
        app.start()
    else:
        _start_asgi_app(app)
    if cache_app:
        _connexion_apps[app_name] = app
    return app


def _import_connexion() -> Any:
    """connexion 3, imported without the warnings it would print at every cold start."""
    import warnings

    try:
        with warnings.catch_warnings():
            # connexion 3 imports what its dependencies deprecate: without
            # this, every cold start would print the warnings to the log.
            warnings.filterwarnings("ignore", "Using `httpx` with `starlette")
            warnings.filterwarnings("ignore", category=DeprecationWarning)
            import connexion
    except ImportError as error:
        raise _missing("connexion", error) from None
    return connexion


def _prepare_connexion_app(app: Any, cors: Cors | None) -> None:
    """Give a new connexion app fleece's error handlers and, with ``cors``, CORS."""
    from connexion.exceptions import NonConformingResponse, ProblemException

    app.add_error_handler(HTTPError, _connexion_http_error)
    app.add_error_handler(ProblemException, _connexion_problem)
    app.add_error_handler(Exception, _connexion_unhandled_error)
    app.add_error_handler(NonConformingResponse, _connexion_contract_violation)
    if cors is not None:
        from connexion.middleware import MiddlewarePosition
        from starlette.middleware.cors import CORSMiddleware

        app.add_middleware(
            CORSMiddleware,
            position=MiddlewarePosition.BEFORE_EXCEPTION,
            allow_origins=sorted(cors.allow_origins),
            allow_methods=["*"],
            allow_headers=list(cors.allow_headers),
            allow_credentials=cors.allow_credentials,
            expose_headers=list(cors.expose_headers),
            max_age=600 if cors.max_age is None else cors.max_age,
        )


# fleece 1.x's FleeceApp class, made on first use (it subclasses connexion's app).
_fleece_app: list[Any] = []


def _fleece_app_class() -> Any:
    """fleece 1.x's ``FleeceApp``: connexion 3's app class with 1.x's methods.

    ``connexion.FlaskApp`` when Flask is installed (the operations may use
    ``flask.request``, as under connexion 1), else ``connexion.AsyncApp``.
    """
    if _fleece_app:
        return _fleece_app[0]
    import importlib.util

    connexion = _import_connexion()
    from connexion.options import SwaggerUIOptions

    base = (
        connexion.FlaskApp if importlib.util.find_spec("flask") else connexion.AsyncApp
    )

    class FleeceApp(base):  # type: ignore[valid-type,misc]
        """connexion's app with fleece 1.x's ``call_api``, ``call_proxy_api`` and ``run``.

        ``FleeceApp(import_name, logger=None, cors=None, **kwargs)``: the
        arguments of connexion 3's app, plus where ``call_api`` logs (fleece
        1.x's ``logger``) and a `Cors` policy. connexion 1's ``port``,
        ``host``, ``debug`` and ``server`` are kept for `run`; its
        ``options={"swagger_ui": ...}`` becomes ``swagger_ui_options``. The
        Swagger UI is off unless ``swagger_ui_options`` (here or to
        ``add_api``) turns it on. No ``lifespan``: an app serving Lambda
        events builds what it needs when its module is imported.
        """

        def __init__(
            self,
            import_name: str,
            *args: Any,
            logger: Any = None,
            cors: Cors | None = None,
            port: int | str | None = None,
            host: str | None = None,
            debug: bool | None = None,
            server: str | None = None,
            options: Mapping[str, Any] | None = None,
            **kwargs: Any,
        ) -> None:
            if "lifespan" in kwargs:
                raise TypeError(
                    "FleeceApp takes no lifespan: an app serving Lambda events "
                    "builds what it needs when its module is imported"
                )
            if options is not None:
                if set(options) - {"swagger_ui"}:
                    raise TypeError(
                        "FleeceApp: connexion 1's options are connexion 3's "
                        "swagger_ui_options; only options={'swagger_ui': ...} "
                        f"is translated, not {sorted(set(options) - {'swagger_ui'})}"
                    )
                if "swagger_ui" in options:
                    kwargs.setdefault(
                        "swagger_ui_options",
                        SwaggerUIOptions(swagger_ui=bool(options["swagger_ui"])),
                    )
            super().__init__(import_name, *args, **kwargs)
            self.logger = logger
            self.started = False  # whether connexion has built its routes
            self._swagger_ui_chosen = kwargs.get("swagger_ui_options") is not None
            self._run_defaults = (port, server, debug, host)
            _prepare_connexion_app(self, cors)

        def add_api(self, specification: Any, **kwargs: Any) -> Any:
            """connexion's ``add_api``; the Swagger UI off unless chosen."""
            if not self._swagger_ui_chosen:
                kwargs.setdefault(
                    "swagger_ui_options", SwaggerUIOptions(swagger_ui=False)
                )
            return super().add_api(specification, **kwargs)

        def start(self) -> None:
            """Have connexion build its routes and validators now.

            `get_connexion_app` does it before returning the app; otherwise
            the first ``call_api`` does.
            """
            _start_asgi_app(self)
            self.started = True

        def call_api(self, event: object, logger: Any = None) -> Any:
            """Serve ``event`` in process and answer as `call_api` does."""
            if not self.started:
                self.start()
            return _call_connexion_app(
                self, event, self.logger if logger is None else logger
            )

        call_proxy_api = call_api

        def run(
            self,
            port: int | str | None = None,
            server: str | None = None,
            debug: bool | None = None,
            host: str | None = None,
            **options: Any,
        ) -> None:
            """Serve the app over HTTP with uvicorn, as connexion 1's ``run`` did.

            ``app.run(8080)`` (fleece 1.x's README) serves on port 8080 of
            every interface (``0.0.0.0``), and port 5000 without one, as
            connexion 1 did: pass ``host="127.0.0.1"`` to keep it local.
            A string of digits is a port; another string is connexion 3's
            import string. ``debug`` logs at DEBUG. ``server`` may be
            ``"uvicorn"`` or ``"flask"`` (served by uvicorn too); connexion
            1's tornado and gevent are gone. Other ``options`` go to
            ``uvicorn.run``.
            """
            default_port, default_server, default_debug, default_host = (
                self._run_defaults
            )
            server = default_server if server is None else server
            if server not in (None, "uvicorn", "flask"):
                raise ValueError(
                    f"FleeceApp.run serves with uvicorn (connexion 3), not {server!r}"
                )
            if debug if debug is not None else default_debug:
                options.setdefault("log_level", "debug")
            port = default_port if port is None else port
            if isinstance(port, str) and not port.isdigit():
                super().run(port, host=host or default_host or "0.0.0.0", **options)
                return
            super().run(
                host=host or default_host or "0.0.0.0",
                port=5000 if port is None else int(port),
                **options,
            )

    _fleece_app.append(FleeceApp)
    return FleeceApp


def call_api(
    event: object,
    app_name: str,
    app_swagger_path: str | os.PathLike[str],
    logger: Any = None,
    strict_validation: bool = True,
    validate_responses: bool = True,
    cache_app: bool = True,
) -> Any:
    """Serve an HTTP event with the spec's connexion app, through either API Gateway integration.

    fleece 1.x's name and arguments: the app is `get_connexion_app`'s (built
    on the first call when the handler's module did not build it), served
    in process. The answer depends on the event:

    - an API Gateway proxy event (REST or HTTP API), ALB or function URL
      event: the Lambda result, as `asgi_handler` gives it. Requests that
      break the spec get connexion's 400 ``application/problem+json``;
      unhandled errors a 500.
    - an event of yoke's request template (API Gateway's non-proxy
      integration: ``parameters.gateway``, ``parameters.request`` and
      ``rawContext``): fleece 1.x's answer. A 2xx (or 3xx) response returns
      its JSON body (None when empty); a 4xx raises `HTTPError` with its
      status and the body's ``error.message``, else connexion's ``detail``,
      else "Client Error"; a 5xx raises `HTTPError` with its status and no
      message, and so does any other failure (500). API Gateway's
      integration responses map the error by its text (``404: Not Found -
      ...``). A malformed template event raises `HTTPError` 400 saying what
      is wrong. These lines go to ``logger``, as in fleece 1.x: "Raising 4xx
      error" and "Raising 5xx error" (``http_status``, ``message`` or
      ``response``), "Response body does not conform to specification"
      (``detail``) when the operation broke the spec, the traceback of an
      exception of the operation, and "HTTPError" with the raised error.

    Any other event raises ``TypeError``.
    """
    app = get_connexion_app(
        app_name,
        app_swagger_path,
        strict_validation=strict_validation,
        validate_responses=validate_responses,
        cache_app=cache_app,
        logger=logger,
    )
    return app.call_api(event, logger)


call_proxy_api = call_api  # fleece 1.x's name for the proxy integration


class Hasher(dict):  # type: ignore[type-arg]
    """A dict whose missing keys read as new, empty Hashers (fleece 1.x's ``fleece.events.Hasher``).

    ``Hasher()["a"]["b"]`` is ``{}``, and the keys it read are then set.
    """

    def __missing__(self, key: Any) -> Hasher:
        value = self[key] = type(self)()
        return value


def format_event(event: Mapping[str, Any], context: Any) -> dict[str, Any]:
    """A request-template event and its context as one request dict (fleece 1.x's ``fleece.events.format_event``).

    The keys: ``requested-at`` (now, UTC, ISO 8601 without a zone),
    ``context`` (the Lambda context's attributes, with
    ``get_remaining_time_in_millis`` as its value now), ``operation``,
    ``requestor``, ``body``, ``path``, ``querystring``, ``header`` (a
    case-insensitive `Headers`) and ``gateway``, read from the event's
    ``operation`` and ``parameters`` as yoke's request template (and
    `testing.LambdaEvent`) puts them. A part the event lacks is an empty
    `Hasher`.
    """
    import datetime

    parameters = _hashed(event, "parameters")
    request = _hashed(parameters, "request")
    header = _hashed(request, "header")
    return {
        "requested-at": datetime.datetime.now(datetime.UTC)
        .replace(tzinfo=None)
        .isoformat(),
        "context": {
            "aws_request_id": context.aws_request_id,
            "client_context": context.client_context,
            "function_name": context.function_name,
            "function_version": context.function_version,
            "get_remaining_time_in_millis": context.get_remaining_time_in_millis(),
            "invoked_function_arn": context.invoked_function_arn,
            "log_group_name": context.log_group_name,
            "log_stream_name": context.log_stream_name,
            "memory_limit_in_mb": context.memory_limit_in_mb,
        },
        "operation": _hashed(event, "operation"),
        "requestor": _hashed(parameters, "requestor"),
        "body": _hashed(request, "body"),
        "path": _hashed(request, "path"),
        "querystring": _hashed(request, "querystring"),
        # As a case-insensitive dict: a name given twice keeps its last value.
        "header": Headers(
            {str(name).lower(): [value] for name, value in header.items()}
        ),
        "gateway": _hashed(parameters, "gateway"),
    }


def _call_connexion_app(app: Any, event: object, logger: Any) -> Any:
    """What ``call_api`` answers for ``event`` with the connexion ``app``."""
    request = parse_event(event, current_lambda_context())
    if isinstance(request, HttpRequest):
        return _serve_asgi(request, app, logger)
    if isinstance(event, dict) and _is_request_template(event):
        return _call_template_api(app, event, _apps_logger(logger))
    raise TypeError(
        "call_api serves HTTP requests (API Gateway, ALB, function URLs) and "
        "events of yoke's request template (parameters.gateway, "
        f"parameters.request and rawContext), and this event is {request.source}"
    )


def _serve_asgi(
    request: HttpRequest, app: Callable[..., Any], logger: Any
) -> dict[str, Any]:
    """The Lambda result of an ASGI app's response to ``request``."""
    target = _apps_logger(logger)
    try:
        scope = _asgi_scope(request)
    except HTTPError as error:  # a body that cannot be read
        return error.response().render(request)
    try:
        status, headers, body = _run_asgi(app, scope, request.body)
    except Exception as error:  # noqa: BLE001 (the app's failure becomes a 500)
        target.exception("unhandled exception in the ASGI app", exc_info=error)
        return HTTPError(500).response().render(request)
    return _app_response(status, headers, body).render(request)


def _run_asgi(
    app: Callable[..., Any], scope: dict[str, Any], body: bytes
) -> tuple[int, list[tuple[str, str]], bytes]:
    """(status, headers, body) of the app's response to one HTTP request, on the process's loop."""
    response: list[Any] = []
    chunks: list[bytes] = []
    _event_loop().run_until_complete(
        app(scope, _asgi_receive(body), _asgi_send(response, chunks))
    )
    if not response:
        raise RuntimeError("the ASGI app returned without starting a response")
    status, raw_headers = response
    headers = [
        (name.decode("latin-1"), value.decode("latin-1")) for name, value in raw_headers
    ]
    return status, headers, b"".join(chunks)


def _is_request_template(event: dict[str, Any]) -> bool:
    """Whether ``event`` is one of yoke's request template (API Gateway's non-proxy integration).

    Its marks are ``parameters`` and ``rawContext``: with either, the event is
    taken as one, and a part missing is answered as a malformed one (400).
    """
    return "parameters" in event or "rawContext" in event


def _call_template_api(app: Any, event: dict[str, Any], logger: Any) -> Any:
    """fleece 1.x's ``FleeceApp.call_api``: the JSON body, or `HTTPError`."""
    try:
        request = _template_request(event, current_lambda_context())
        scope = _asgi_scope(request)
        scope["aws.event"] = event
        # Where the error handlers of `get_connexion_app` leave what the
        # response alone does not tell: the operation's exception, a broken
        # contract.
        caught: dict[str, Any] = {}
        scope["fleece.caught"] = caught
        status, _, body = _run_asgi(app, scope, request.body)
        return _template_answer(status, body, caught, logger, request)
    except HTTPError:
        logger.exception("HTTPError")
        raise
    except Exception:  # noqa: BLE001 (1.x's answer to any failure: a bare 500)
        logger.exception("Unhandled exception")
        raise HTTPError(500) from None


def _template_request(event: dict[str, Any], context: Any) -> RestApiRequest:
    """A request-template event as the REST API proxy event of the same request.

    yoke's template: ``rawContext.httpMethod`` and ``identity.sourceIp``;
    ``parameters.gateway["resource-path"]`` (``/users/{user_id}``), whose
    parameters ``parameters.request.path`` fills; ``request.querystring``
    (name -> value; a list of pairs and a query string are taken too),
    ``request.header`` (name -> value) and ``request.body`` (the JSON body,
    sent for POST, PUT and PATCH as fleece 1.x did, as
    ``application/json`` unless a ``Content-Type`` says otherwise).
    """
    parameters = _template_part(event, "parameters", "parameters")
    gateway = _template_part(parameters, "gateway", "parameters.gateway")
    request = _template_part(parameters, "request", "parameters.request")
    raw_context = _template_part(event, "rawContext", "rawContext")
    method = raw_context.get("httpMethod")
    if not isinstance(method, str) or not method.isalpha():
        raise _malformed_template("rawContext.httpMethod is not an HTTP method")
    resource = gateway.get("resource-path")
    if not isinstance(resource, str) or not resource.startswith("/"):
        raise _malformed_template("parameters.gateway.resource-path is not a path")
    path_values = _template_part(request, "path", "parameters.request.path", {})
    header = _template_part(request, "header", "parameters.request.header", {})
    headers = {str(name): str(value) for name, value in header.items()}
    body = None
    if method.upper() in ("POST", "PUT", "PATCH") and "body" in request:
        try:
            body = json.dumps(request["body"])
        except (TypeError, ValueError):
            raise _malformed_template("parameters.request.body is not JSON") from None
        if not any(name.lower() == "content-type" for name in headers):
            headers["Content-Type"] = "application/json"
    identity = raw_context.get("identity")
    source_ip = identity.get("sourceIp") if isinstance(identity, dict) else None
    proxy_event = {
        "resource": resource,
        "path": _template_path(resource, path_values),
        "httpMethod": method.upper(),
        "headers": headers,
        "multiValueQueryStringParameters": _template_query(request.get("querystring")),
        "pathParameters": {str(k): str(v) for k, v in path_values.items()} or None,
        "body": body,
        "isBase64Encoded": False,
        "requestContext": {
            "httpMethod": method.upper(),
            "resourcePath": resource,
            "requestId": raw_context.get("requestId"),
            "identity": {"sourceIp": source_ip},
        },
    }
    return RestApiRequest(proxy_event, context)


def _template_part(
    parent: dict[str, Any], key: str, name: str, default: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The object ``parent[key]`` of a template event (``default`` when absent, if given)."""
    value = parent.get(key, default)
    if not isinstance(value, dict):
        raise _malformed_template(f"{name} is not an object")
    return value


def _template_path(resource: str, values: dict[str, Any]) -> str:
    """``/users/{user_id}`` with the value of each parameter (``{proxy+}`` takes several segments)."""
    import re

    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in values:
            raise _malformed_template(
                f"parameters.request.path has no value for {{{name}}} of {resource}"
            )
        return str(values[name])

    return re.sub(r"\{([^{}/]+?)\+?\}", value, resource)


def _template_query(query: object) -> dict[str, list[str]] | None:
    """The query parameters of a template event: name -> values."""
    from urllib.parse import parse_qsl

    if query is None or query == "":
        pairs: list[tuple[Any, Any]] = []
    elif isinstance(query, str):
        pairs = parse_qsl(query, keep_blank_values=True)
    elif isinstance(query, dict):
        pairs = [
            (name, item)
            for name, value in query.items()
            for item in (value if isinstance(value, list) else [value])
        ]
    elif isinstance(query, list) and all(
        isinstance(pair, (list, tuple)) and len(pair) == 2 for pair in query
    ):
        pairs = [(name, value) for name, value in query]
    else:
        raise _malformed_template(
            "parameters.request.querystring is not an object, pairs or a query string"
        )
    lists: dict[str, list[str]] = {}
    for name, value in pairs:
        lists.setdefault(str(name), []).append(str(value))
    return lists or None


def _malformed_template(problem: str) -> HTTPError:
    return HTTPError(400, f"malformed request-template event: {problem}")


def _template_answer(
    status: int,
    body: bytes,
    caught: dict[str, Any],
    logger: Any,
    request: HttpRequest,
) -> Any:
    """fleece 1.x's answer to a response: its JSON body, or the `HTTPError` to raise.

    A 4xx message may quote what the request sent (connexion's validation
    errors do): the values of its secret headers and query parameters
    (see `_is_secret`) are redacted from it.
    """
    if status < 400:
        return json.loads(body) if body else None
    try:
        payload = json.loads(body)
    except ValueError:
        payload = None
    if status < 500:
        sent = [
            *(
                (name, value)
                for name in request.headers
                for value in request.headers.get_all(name)
            ),
            *(
                (name, value)
                for name, values in request.query_all.items()
                for value in values
            ),
        ]
        message = _without_secrets(_template_error_message(payload), sent)
        logger.error("Raising 4xx error", http_status=status, message=message)
        raise HTTPError(status, message)
    if "unhandled" in caught:
        logger.exception("Unhandled exception", exc_info=caught["unhandled"])
    if "contract_violation" in caught:
        logger.error(_RESPONSE_CONTRACT_VIOLATION, detail=caught["contract_violation"])
    else:
        logger.error("Raising 5xx error", response=payload, http_status=status)
    raise HTTPError(status)


def _without_secrets(text: str, sent: Iterable[tuple[str, str]]) -> str:
    """``text`` without the values of the secret headers or query parameters in ``sent``.

    ``sent``: (name, value) pairs of a request; a name is secret by `_is_secret`.
    """
    import re

    forms: set[str] = set()
    for name, value in sent:
        if not value or not _is_secret(name):
            continue
        # The value, and its long parts: a cookie's or a list's item, what
        # follows "Bearer " (messages quote those alone, and pprint breaks a
        # long value at its spaces); each as written, repr()'d and as JSON.
        parts = [value, *(p for p in re.split(r"[\s;,=&]+", value) if len(p) >= 8)]
        for part in parts:
            forms.update((part, repr(part)[1:-1], json.dumps(part)[1:-1]))
    for form in sorted(forms, key=len, reverse=True):  # one holding another first
        if form:
            text = text.replace(form, _REDACTED)
    return text


def _template_error_message(payload: object) -> str:
    """The message of a 4xx body: ``error.message``, else connexion's ``detail``.

    Its first line only: API Gateway matches an integration response's
    pattern (``^400:.*``) against the whole error text, and ``.`` stops at a
    line break (jsonschema's messages go on with the schema).
    """
    message = "Client Error"
    if isinstance(payload, dict):
        error = payload.get("error")
        if isinstance(error, dict) and "message" in error:
            message = str(error["message"])
        elif "detail" in payload:
            message = str(payload["detail"])
    return message.split("\n", 1)[0].strip() or "Client Error"


def _hashed(parent: Mapping[str, Any], key: str) -> Any:
    """``parent[key]``, or an empty `Hasher` when it is absent (or ``parent`` is no mapping)."""
    if isinstance(parent, Mapping) and key in parent:
        return parent[key]
    return Hasher()


def _http_request(event: object, context: Any, caller: str) -> HttpRequest:
    request = parse_event(event, context)
    if not isinstance(request, HttpRequest):
        raise TypeError(
            f"{caller} serves HTTP requests, and this event is {request.source}"
        )
    return request


def _wsgi_environ(request: HttpRequest) -> dict[str, Any]:
    import io

    headers = request.headers
    body = request.body
    host, port = _host_and_port(request)
    environ: dict[str, Any] = {
        "REQUEST_METHOD": request.method,
        "SCRIPT_NAME": _wsgi_text(request.base_path),
        "PATH_INFO": _wsgi_text(request.path),
        "QUERY_STRING": _query_string(request),
        "SERVER_NAME": host,
        "SERVER_PORT": port,
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": request.source_ip or "",
        "CONTENT_LENGTH": str(len(body)),
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": headers.get("x-forwarded-proto", "https"),
        "wsgi.input": io.BytesIO(body),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": False,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
        "lambda.event": request.raw,
        "lambda.context": request.context,
    }
    content_type = headers.get("content-type")
    if content_type is not None:
        environ["CONTENT_TYPE"] = content_type
    for name in headers:
        if name in ("content-type", "content-length"):
            continue
        key = "HTTP_" + name.upper().replace("-", "_")
        environ[key] = _wsgi_text(headers[name])
    return environ


def _apps_logger(logger: Any) -> Any:
    """``logger``, a `Logger` around it when it is a standard one or an adapter.

    Standard loggers and adapters take no keyword fields; any other logger
    is used as it is, as fleece 1.x did (structlog's take fields).
    """
    if logger is None:
        return Logger(logging.getLogger("fleece_runtime.apps"))
    if isinstance(logger, logging.LoggerAdapter):
        logger = logger.logger
    if isinstance(logger, logging.Logger):
        return Logger(logger)
    return logger


def _app_response(status: int, headers: list[tuple[str, str]], body: bytes) -> Response:
    grouped: dict[str, list[str]] = {}
    cookies: list[str] = []
    for name, value in headers:
        if name.lower() == "set-cookie":
            cookies.append(value)
        else:
            grouped.setdefault(name, []).append(value)
    return Response(
        status,
        body or None,
        {name: values for name, values in grouped.items()},
        cookies,
    )


def _wsgi_text(text: str) -> str:
    """``text`` as WSGI strings carry it: its UTF-8 bytes read as latin-1."""
    return text.encode("utf-8", "surrogateescape").decode("latin-1")


def _host_and_port(request: HttpRequest) -> tuple[str, str]:
    headers = request.headers
    host = headers.get("host", "lambda")
    port = headers.get("x-forwarded-port")
    if ":" in host and not host.endswith("]"):
        host, _, given = host.rpartition(":")
        port = port or given
    return host, port or ("80" if headers.get("x-forwarded-proto") == "http" else "443")


def _query_string(request: HttpRequest) -> str:
    raw = request.raw.get("rawQueryString")
    if isinstance(raw, str):
        return raw
    from urllib.parse import urlencode

    return urlencode(
        [
            (name, value)
            for name, values in request.query_all.items()
            for value in values
        ]
    )


def _asgi_scope(request: HttpRequest) -> dict[str, Any]:
    """The ASGI scope of ``request``; `HTTPError` 400 for what an app cannot read."""
    # connexion cannot read a media type that is not ASCII (it answers 500).
    if not request.headers.get("content-type", "").isascii():
        raise HTTPError(400, "the Content-Type header is not ASCII")
    host, port = _host_and_port(request)
    headers = [
        (name.encode("latin-1", "replace"), value.encode("latin-1", "replace"))
        for name in request.headers
        if name != "content-length"
        for value in request.headers.get_all(name)
    ]
    # What a server says of every body; connexion reads no body without it.
    headers.append((b"content-length", str(len(request.body)).encode()))
    # ASGI's path is the whole URL path: root_path is the part of it before
    # the app's own (Starlette routes on what follows root_path).
    full_path = request.base_path + request.path
    try:
        raw_path = full_path.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate ("\ud800" in the event's JSON)
        raise HTTPError(400, "the request's path is not text") from None
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": request.method,
        "scheme": request.headers.get("x-forwarded-proto", "https"),
        "path": full_path,
        "raw_path": raw_path,
        "query_string": _query_string(request).encode("latin-1", "replace"),
        "root_path": request.base_path,
        "headers": headers,
        "client": (request.source_ip or "", 0),
        "server": (host, int(port) if port.isdigit() else 443),
        "state": {},
        "aws.event": request.raw,
        "aws.context": request.context,
    }


def _asgi_receive(body: bytes) -> Callable[[], Any]:
    sent = False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return {"type": "http.disconnect"}

    return receive


def _asgi_send(
    response: list[Any], chunks: list[bytes]
) -> Callable[[dict[str, Any]], Any]:
    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            response[:] = [message["status"], message.get("headers", [])]
        elif message["type"] == "http.response.body":
            chunks.append(bytes(message.get("body", b"")))

    return send


def _event_loop() -> Any:
    """The process's event loop for ASGI apps, made on first use."""
    global _asgi_loop
    if _asgi_loop is None or _asgi_loop.is_closed():
        import asyncio

        _asgi_loop = asyncio.new_event_loop()
    return _asgi_loop


def _start_asgi_app(app: Any) -> None:
    """Have an ASGI app build everything it builds lazily (connexion: its routes and validators).

    A lifespan cycle does it: connexion builds its middleware stack on the
    first call of any kind, here a startup immediately followed by a
    shutdown (a ``FleeceApp`` takes no lifespan, and `get_connexion_app`
    gives other classes none).
    """
    messages = iter([{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}])

    async def receive() -> dict[str, Any]:
        return next(messages)

    async def send(message: dict[str, Any]) -> None:
        if message["type"].endswith(".failed"):
            raise RuntimeError(f"the app failed to start: {message.get('message', '')}")

    _event_loop().run_until_complete(
        app(
            {"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}, receive, send
        )
    )


def _connexion_http_error(request: Any, error: Exception) -> Any:
    """An `HTTPError` raised by an operation, as connexion's problem response."""
    from connexion.problem import problem

    if not isinstance(error, HTTPError):
        raise error
    return problem(
        status=error.status_code,
        title=error.reason,
        detail=error.message,
        headers=error.headers or None,
    )


def _connexion_problem(request: Any, error: Any) -> Any:
    """connexion's answer to a request it refused, logged without the request's secrets.

    connexion logs the problem (its detail may quote a header or query
    parameter that failed validation) on its own logger; this logs the same
    line with the values of secret headers and query parameters redacted.
    """
    from urllib.parse import parse_qsl

    scope = request.scope
    sent = [
        (name.decode("latin-1"), value.decode("latin-1"))
        for name, value in scope.get("headers", ())
    ]
    query = scope.get("query_string", b"").decode("latin-1")
    sent += parse_qsl(query, keep_blank_values=True)
    # The detail's first line: not the instance jsonschema pprints after it.
    detail = _without_secrets(str(error.detail or "").split("\n", 1)[0], sent)
    logging.getLogger("connexion.middleware.exceptions").log(
        logging.WARNING if 400 <= error.status <= 499 else logging.ERROR,
        "%s(status_code=%s, detail=%r)",
        type(error).__name__,
        error.status,
        detail,
    )
    return error.to_problem()


def _connexion_unhandled_error(request: Any, error: Exception) -> Any:
    """An operation's exception: connexion's 500; a template call logs it itself."""
    from connexion.exceptions import InternalServerError
    from connexion.middleware.exceptions import ExceptionMiddleware

    caught = request.scope.get("fleece.caught")
    if caught is None:
        return ExceptionMiddleware.common_error_handler(request, error)
    caught["unhandled"] = error
    return InternalServerError().to_problem()


def _connexion_contract_violation(request: Any, error: Any) -> Any:
    """A response that breaks the spec: connexion's 500; a template call logs jsonschema's account of it."""
    from connexion.middleware.exceptions import ExceptionMiddleware

    caught = request.scope.get("fleece.caught")
    if caught is None:
        return ExceptionMiddleware.problem_handler(request, error)
    # connexion raises it while handling jsonschema's ValidationError.
    cause = error.__context__
    caught["contract_violation"] = (
        _schema_error_text(cause)
        if hasattr(cause, "relative_schema_path")
        else error.detail
    )
    return error.to_problem()


def _schema_error_text(error: Any) -> str:
    """A jsonschema error as fleece 1.x logged it: the failed part of the schema, its keys sorted."""
    import pprint
    import textwrap

    def index(path: Iterable[object]) -> str:
        return "".join(f"[{part!r}]" for part in path)

    schema = textwrap.indent(pprint.pformat(error.schema, width=72), "    ")
    instance = textwrap.indent(pprint.pformat(error.instance, width=72), "    ")
    return (
        f"{error.message}\n\n"
        f"Failed validating {error.validator!r} in "
        f"schema{index(list(error.relative_schema_path)[:-1])}:\n{schema}\n\n"
        f"On instance{index(error.relative_path)}:\n{instance}"
    )


class _ConnexionNamespace:
    """OpenAPI apps, as ``from fleece_runtime import connexion`` (was ``fleece.connexion``)."""

    __slots__ = ()
    call_api = staticmethod(call_api)
    call_proxy_api = staticmethod(call_proxy_api)
    get_connexion_app = staticmethod(get_connexion_app)
    RESPONSE_CONTRACT_VIOLATION = _RESPONSE_CONTRACT_VIOLATION

    @property
    def FleeceApp(self) -> Any:  # noqa: N802 (fleece 1.x's class name)
        """fleece 1.x's app class: connexion 3's, with ``call_api`` and 1.x's ``run``.

        Made on first use, importing connexion: ``FleeceApp(import_name,
        logger=None, cors=None, specification_dir=...)``, then ``add_api``.
        """
        return _fleece_app_class()


class _WsgiNamespace:
    """WSGI apps, as ``handlers.wsgi`` (was ``fleece.handlers.wsgi``)."""

    __slots__ = ()
    wsgi_handler = staticmethod(wsgi_handler)
    build_wsgi_environ_from_event = staticmethod(build_wsgi_environ_from_event)


class _HandlersNamespace:
    """``from fleece_runtime import handlers`` (was ``fleece.handlers``)."""

    __slots__ = ()
    wsgi = _WsgiNamespace()
    connexion = _ConnexionNamespace()


class _EventsNamespace:
    """Request-template events, as ``from fleece_runtime import events`` (was ``fleece.events``)."""

    __slots__ = ()
    format_event = staticmethod(format_event)
    Hasher = Hasher


connexion = _ConnexionNamespace()
handlers = _HandlersNamespace()
events = _EventsNamespace()


# ---------------------------------------------------------------------------
# Authorizers: API Gateway Lambda authorizer answers
# ---------------------------------------------------------------------------

_POLICY_VERSION = "2012-10-17"


class HttpVerb:
    """The methods an `AuthPolicy` statement names (``ALL`` is every method)."""

    GET = "GET"
    POST = "POST"
    PUT = "PUT"
    PATCH = "PATCH"
    HEAD = "HEAD"
    DELETE = "DELETE"
    OPTIONS = "OPTIONS"
    ALL = "*"


class InvalidPolicy(ValueError, NameError):
    """A method or resource path an `AuthPolicy` cannot hold, or an empty policy.

    A ``ValueError``, and a ``NameError`` as fleece 1.x raised.
    """


class AuthPolicy:
    """The answer of an API Gateway Lambda authorizer: an IAM policy for the caller.

    fleece 1.x's ``fleece.authpolicy.AuthPolicy``, the same arguments and
    methods::

        policy = AuthPolicy(account_id, principal=user_id, rest_api_id=api_id,
                            region=region, stage=stage, context={"tenant": "t1"})
        policy.allow_method(HttpVerb.GET, "/orders/*")
        policy.deny_method("DELETE", "/orders/*")
        return policy.build()

    `from_method_arn` fills the account, API, region and stage from the
    authorizer event's ``methodArn``. ``rest_api_id``, ``region`` and
    ``stage`` default to ``*``. A resource path holds letters, digits and
    ``/ . - _ * :``; anything else, an unknown method, or a policy with no
    statement raises `InvalidPolicy`. `build` returns ``principalId``,
    ``policyDocument`` (one statement per effect, plus one per method with
    conditions) and ``context``, whose values must be strings, numbers or
    booleans (API Gateway refuses anything else).
    """

    def __init__(
        self,
        aws_account_id: str,
        principal: str | None = None,
        context: Mapping[str, Any] | None = None,
        rest_api_id: str | None = None,
        region: str | None = None,
        stage: str | None = None,
    ) -> None:
        self.aws_account_id = aws_account_id
        self.principal_id = principal or ""
        self.version = _POLICY_VERSION
        self.context: dict[str, Any] = dict(context or {})
        self.rest_api_id = rest_api_id or "*"
        self.region = region or "*"
        self.stage = stage or "*"
        # fleece 1.x's attribute names: each entry is {"resource_arn", "conditions"}.
        self.allowMethods: list[dict[str, Any]] = []
        self.denyMethods: list[dict[str, Any]] = []

    @classmethod
    def from_method_arn(
        cls,
        method_arn: str,
        principal: str | None = None,
        context: Mapping[str, Any] | None = None,
    ) -> AuthPolicy:
        """A policy for the API and stage of ``method_arn`` (the event's ``methodArn``)."""
        parts = method_arn.split(":", 5) if isinstance(method_arn, str) else []
        api = parts[5].split("/") if len(parts) == 6 else []
        if len(api) < 2 or parts[0] != "arn" or parts[2] != "execute-api":
            raise InvalidPolicy(
                f"{method_arn!r} is not an API Gateway method ARN "
                f"(arn:aws:execute-api:REGION:ACCOUNT:API/STAGE/METHOD/PATH)"
            )
        return cls(
            parts[4],
            principal,
            context,
            rest_api_id=api[0],
            region=parts[3],
            stage=api[1],
        )

    def allow_all_methods(self) -> None:
        """Allow every method on every resource of the API."""
        self._add_method("Allow", HttpVerb.ALL, "*", None)

    def deny_all_methods(self) -> None:
        """Deny every method on every resource of the API."""
        self._add_method("Deny", HttpVerb.ALL, "*", None)

    def allow_method(self, verb: str, resource: str) -> None:
        """Allow ``verb`` (a `HttpVerb`) on ``resource`` (``/orders/*``)."""
        self._add_method("Allow", verb, resource, None)

    def deny_method(self, verb: str, resource: str) -> None:
        """Deny ``verb`` on ``resource``."""
        self._add_method("Deny", verb, resource, None)

    def allow_method_with_conditions(
        self, verb: str, resource: str, conditions: Mapping[str, Any]
    ) -> None:
        """Allow ``verb`` on ``resource`` under IAM ``conditions`` (a statement of its own)."""
        self._add_method("Allow", verb, resource, conditions)

    def deny_method_with_conditions(
        self, verb: str, resource: str, conditions: Mapping[str, Any]
    ) -> None:
        """Deny ``verb`` on ``resource`` under IAM ``conditions`` (a statement of its own)."""
        self._add_method("Deny", verb, resource, conditions)

    def build(self) -> dict[str, Any]:
        """The authorizer's answer: ``principalId``, ``policyDocument``, ``context``."""
        if not self.allowMethods and not self.denyMethods:
            raise InvalidPolicy(
                "no statements defined for the policy: allow or deny something first"
            )
        for key, value in self.context.items():
            if value is not None and not isinstance(value, (str, int, float, bool)):
                raise InvalidPolicy(
                    f"context[{key!r}] is a {type(value).__name__}: API Gateway takes "
                    f"strings, numbers and booleans only (encode it as JSON text)"
                )
        statements = _policy_statements(
            "Allow", self.allowMethods
        ) + _policy_statements("Deny", self.denyMethods)
        return {
            "principalId": self.principal_id,
            "policyDocument": {"Version": self.version, "Statement": statements},
            "context": self.context,
        }

    def _add_method(
        self,
        effect: str,
        verb: str,
        resource: str,
        conditions: Mapping[str, Any] | None,
    ) -> None:
        if verb != HttpVerb.ALL and verb not in _HTTP_VERBS:
            raise InvalidPolicy(
                f"invalid HTTP verb {verb!r}: use one of {', '.join(_HTTP_VERBS)} or '*'"
            )
        if (
            not isinstance(resource, str)
            or not resource
            or not all(c.isascii() and (c.isalnum() or c in "/.-_*:") for c in resource)
        ):
            raise InvalidPolicy(
                f"invalid resource path {resource!r}: letters, digits and / . - _ * : only"
            )
        arn = (
            f"arn:aws:execute-api:{self.region}:{self.aws_account_id}:"
            f"{self.rest_api_id}/{self.stage}/{verb}/{resource.removeprefix('/')}"
        )
        entry = {"resource_arn": arn, "conditions": conditions}
        (self.allowMethods if effect == "Allow" else self.denyMethods).append(entry)


_HTTP_VERBS = ("GET", "POST", "PUT", "PATCH", "HEAD", "DELETE", "OPTIONS")


def simple_authorizer_response(
    authorized: bool, context: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The simple answer of an HTTP API Lambda authorizer (payload 2.0).

    ``{"isAuthorized": authorized, "context": context}``: for authorizers
    with simple responses enabled (``EnableSimpleResponses``); the context
    reaches the route as ``request.claims``.
    """
    if not isinstance(authorized, bool):
        raise TypeError(f"authorized must be True or False, not {authorized!r}")
    return {"isAuthorized": authorized, "context": dict(context or {})}


def _policy_statements(
    effect: str, methods: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """The statements of one effect: one per method with conditions, then one
    for the plain methods (with no resource when every method has conditions,
    as fleece 1.x and AWS's authorizer blueprint write it)."""
    if not methods:
        return []
    statements = []
    plain: list[str] = []
    for method in methods:
        if method["conditions"]:
            statements.append(
                {
                    "Action": "execute-api:Invoke",
                    "Effect": effect,
                    "Resource": [method["resource_arn"]],
                    "Condition": method["conditions"],
                }
            )
        else:
            plain.append(method["resource_arn"])
    statements.append(
        {"Action": "execute-api:Invoke", "Effect": effect, "Resource": plain}
    )
    return statements


class _AuthPolicyNamespace:
    """Authorizer policies, as ``from fleece_runtime import authpolicy`` (was ``fleece.authpolicy``)."""

    __slots__ = ()
    AuthPolicy = AuthPolicy
    HttpVerb = HttpVerb


authpolicy = _AuthPolicyNamespace()


# ---------------------------------------------------------------------------
# Testing helpers: a Lambda context and the events of every source
# ---------------------------------------------------------------------------

_TEST_ACCOUNT = "123456789012"
_TEST_REGION = "us-east-1"
_TEST_API = "abcdef1234"
_TEST_IP = "203.0.113.10"
_TEST_AGENT = "curl/8.5.0"


class LambdaContext:
    """A Lambda context for tests: fleece 1.x's ``fleece.testing.LambdaContext``.

    The same constructor as 1.x, and the attributes of the context Lambda's
    Python runtime passes, with their types: ``function_name``,
    ``function_version`` and ``memory_limit_in_mb`` (strings, as Lambda
    gives them), ``aws_request_id`` (a new UUID unless given),
    ``invoked_function_arn`` (qualified by ``stage``), ``log_group_name``,
    ``log_stream_name``, ``client_context`` (None, or an object with
    ``custom``, ``env`` and ``client`` when given a dict), ``identity``
    (``cognito_identity_id`` and ``cognito_identity_pool_id``),
    ``tenant_id``. `get_remaining_time_in_millis` counts down from
    ``remaining_time_in_milli``, as the invocation's time passes;
    ``clock`` (seconds, ``time.monotonic`` by default) lets a test move time.
    """

    def __init__(
        self,
        function_name: str = "test_function",
        function_version: str | int = 1,
        remaining_time_in_milli: int = 9999,
        memory_limit_in_mb: str | int = 256,
        region: str = "us-east-1",
        account_id: str = "999999999999",
        stage: str | None = "test_stage",
        aws_request_id: str | None = None,
        client_context: Any = None,
        *,
        clock: Callable[[], float] | None = None,
    ) -> None:
        import uuid
        from types import SimpleNamespace

        self.function_name = function_name
        self.function_version = str(function_version)
        self.memory_limit_in_mb = str(memory_limit_in_mb)
        self.aws_request_id = aws_request_id or str(uuid.uuid4())
        arn = f"arn:aws:lambda:{region}:{account_id}:function:{function_name}"
        self.invoked_function_arn = f"{arn}:{stage}" if stage else arn
        self.log_group_name = f"/aws/lambda/{function_name}"
        today = time.strftime("%Y/%m/%d", time.gmtime())
        self.log_stream_name = f"{today}/[{self.function_version}]{uuid.uuid4().hex}"
        if isinstance(client_context, dict):
            client_context = SimpleNamespace(
                custom=client_context.get("custom"),
                env=client_context.get("env"),
                client=client_context.get("client"),
            )
        self.client_context = client_context
        self.identity = SimpleNamespace(
            cognito_identity_id=None, cognito_identity_pool_id=None
        )
        self.tenant_id: str | None = None
        self._clock = clock or time.monotonic
        self._ends = self._clock() + remaining_time_in_milli / 1000

    def __repr__(self) -> str:
        return f"<LambdaContext {self.function_name} {self.aws_request_id}>"

    def get_remaining_time_in_millis(self) -> int:
        """Milliseconds left before the invocation times out (never below 0)."""
        return max(0, int((self._ends - self._clock()) * 1000))


class LambdaEvent:
    """A maker of yoke request-template events: fleece 1.x's ``fleece.testing.LambdaEvent``.

    Each part of the event (``body``, ``gateway``, ``header``, ``path``,
    ``querystring``, ``requestor``: dicts; ``operation``: a string) is the
    one given to the constructor, else 1.x's default. `generate` builds
    ``{"operation": ..., "parameters": {"requestor": ..., "request":
    {"body", "path", "querystring", "header"}, "gateway": ...}}``, each
    part merged (one level deep, `dict_update`) with what it is given::

        LambdaEvent().generate(gateway={"http-method": "POST"},
                               header={"x-auth-token": "SOME VALUE"})

    The events of the non-proxy integration lack ``rawContext``, as in 1.x;
    `call_api` needs it (add ``rawContext={"httpMethod": ...}``). The
    defaults' ``gateway["request-id"]`` is a new UUID per instance.
    """

    merge_dicts = True  # fleece 1.x's attribute (which 1.x did not read either)

    def __init__(
        self,
        body: dict[str, Any] | None = None,
        gateway: dict[str, Any] | None = None,
        header: dict[str, Any] | None = None,
        operation: str | None = None,
        path: dict[str, Any] | None = None,
        querystring: dict[str, Any] | None = None,
        requestor: dict[str, Any] | None = None,
    ) -> None:
        defaults = _lambda_event_defaults()
        self.body = body or defaults["body"]
        self.gateway = gateway or defaults["gateway"]
        self.header = header or defaults["header"]
        self.operation = operation or defaults["operation"]
        self.path = path or defaults["path"]
        self.querystring = querystring or defaults["querystring"]
        self.requestor = requestor or defaults["requestor"]

    def generate(
        self, merge_with_default: bool = True, **kwargs: Any
    ) -> dict[str, Any]:
        """A new event: each part given in ``kwargs`` merged into this maker's
        (or, with ``merge_with_default=False``, replacing it)."""
        import copy

        def part(name: str) -> dict[str, Any]:
            return dict_update(
                getattr(self, name), merge_with_default, kwargs.get(name, {})
            )

        operation = kwargs.get("operation")
        event = {
            "operation": self.operation if operation is None else operation,
            "parameters": {
                "requestor": part("requestor"),
                "request": {
                    "body": part("body"),
                    "path": part("path"),
                    "querystring": part("querystring"),
                    "header": part("header"),
                },
                "gateway": part("gateway"),
            },
        }
        return copy.deepcopy(event)


class LambdaRequestGenerator:
    """Requests as a handler of 1.x's request-template style reads them (fleece 1.x's ``fleece.testing.LambdaRequestGenerator``).

    ``generate_request(**kwargs)`` is `events.format_event` of
    ``event.generate(**kwargs)`` (a `LambdaEvent`, a default one unless
    given) and ``context`` (a default `LambdaContext` unless given).
    """

    def __init__(self, event: LambdaEvent | None = None, context: Any = None) -> None:
        self.event = event or LambdaEvent()
        self.context = context or LambdaContext()

    def generate_request(self, **kwargs: Any) -> dict[str, Any]:
        """The request of a new event; ``kwargs`` go to `LambdaEvent.generate`."""
        return format_event(self.event.generate(**kwargs), self.context)


def dict_update(
    base: dict[str, Any], merge: bool, kwargs: dict[str, Any]
) -> dict[str, Any]:
    """``base`` updated with ``kwargs`` (a new dict), or ``kwargs`` itself when not ``merge`` (fleece 1.x's)."""
    if not merge:
        return kwargs
    merged = base.copy()
    merged.update(kwargs)
    return merged


def rest_api_event(
    method: str = "GET",
    path: str = "/",
    *,
    body: object = None,
    headers: Mapping[str, str | list[str]] | None = None,
    query: Mapping[str, str | list[str]] | None = None,
    path_params: Mapping[str, str] | None = None,
    stage: str = "prod",
    resource: str | None = None,
    claims: Mapping[str, Any] | None = None,
    **overrides: Any,
) -> dict[str, Any]:
    """An API Gateway REST API proxy event, as AWS documents it.

    ``body``: text, bytes (base64-encoded, ``isBase64Encoded``) or a value
    sent as JSON. ``headers`` and ``query``: name -> value or list of
    values (both the single- and multi-value fields are filled).
    ``claims``: a Cognito authorizer's. ``overrides`` replace fields of the
    event, merged into nested objects (``requestContext={"stage": "dev"}``).
    """
    header_lists = _value_lists(
        {
            "Host": f"{_TEST_API}.execute-api.{_TEST_REGION}.amazonaws.com",
            "User-Agent": _TEST_AGENT,
            "X-Forwarded-For": _TEST_IP,
            "X-Forwarded-Port": "443",
            "X-Forwarded-Proto": "https",
            **_content_type(body),
            **(headers or {}),
        }
    )
    query_lists = _value_lists(query or {})
    text, is_base64 = _event_body(body)
    now = time.time()
    event: dict[str, Any] = {
        "resource": resource or path,
        "path": path,
        "httpMethod": method.upper(),
        "headers": {name: values[-1] for name, values in header_lists.items()},
        "multiValueHeaders": header_lists,
        "queryStringParameters": {
            name: values[-1] for name, values in query_lists.items()
        }
        or None,
        "multiValueQueryStringParameters": query_lists or None,
        "pathParameters": dict(path_params) if path_params else None,
        "stageVariables": None,
        "requestContext": {
            "resourceId": "2gxmpl",
            "resourcePath": resource or path,
            "httpMethod": method.upper(),
            "extendedRequestId": "JJbxmHc8IAMFpXA=",
            "requestTime": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)),
            "path": f"/{stage}{path}",
            "accountId": _TEST_ACCOUNT,
            "protocol": "HTTP/1.1",
            "stage": stage,
            "domainPrefix": _TEST_API,
            "requestTimeEpoch": int(now * 1000),
            "requestId": _new_id(),
            "identity": {
                "cognitoIdentityPoolId": None,
                "accountId": None,
                "cognitoIdentityId": None,
                "caller": None,
                "sourceIp": _TEST_IP,
                "principalOrgId": None,
                "accessKey": None,
                "cognitoAuthenticationType": None,
                "cognitoAuthenticationProvider": None,
                "userArn": None,
                "userAgent": _TEST_AGENT,
                "user": None,
            },
            "domainName": f"{_TEST_API}.execute-api.{_TEST_REGION}.amazonaws.com",
            "apiId": _TEST_API,
        },
        "body": text,
        "isBase64Encoded": is_base64,
    }
    if claims is not None:
        event["requestContext"]["authorizer"] = {"claims": dict(claims)}
    return _merged(event, overrides)


def http_api_event(
    method: str = "GET",
    path: str = "/",
    *,
    body: object = None,
    headers: Mapping[str, str | list[str]] | None = None,
    query: Mapping[str, str | list[str]] | None = None,
    cookies: Mapping[str, str] | None = None,
    path_params: Mapping[str, str] | None = None,
    stage: str = "$default",
    route_key: str | None = None,
    claims: Mapping[str, Any] | None = None,
    **overrides: Any,
) -> dict[str, Any]:
    """An API Gateway HTTP API event (payload format 2.0), as AWS documents it.

    As `rest_api_event`; ``cookies`` go in the event's ``cookies``,
    ``claims`` are a JWT authorizer's, and with a ``stage`` other than
    ``$default`` the raw path starts with it, as API Gateway sends it.
    """
    return _http_api_shaped(
        method,
        path,
        body,
        headers,
        query,
        cookies,
        path_params,
        stage,
        route_key or "$default",
        f"{_TEST_API}.execute-api.{_TEST_REGION}.amazonaws.com",
        (
            {"jwt": {"claims": dict(claims), "scopes": None}}
            if claims is not None
            else None
        ),
        overrides,
    )


def function_url_event(
    method: str = "GET",
    path: str = "/",
    *,
    body: object = None,
    headers: Mapping[str, str | list[str]] | None = None,
    query: Mapping[str, str | list[str]] | None = None,
    cookies: Mapping[str, str] | None = None,
    **overrides: Any,
) -> dict[str, Any]:
    """A Lambda function URL event (the HTTP API 2.0 payload), as AWS documents it."""
    return _http_api_shaped(
        method,
        path,
        body,
        headers,
        query,
        cookies,
        None,
        "$default",
        "$default",
        "a1b2c3d4e5f6g7h8i9j0k1l2m3n4o5p6.lambda-url.us-east-1.on.aws",
        None,
        overrides,
    )


def alb_event(
    method: str = "GET",
    path: str = "/",
    *,
    body: object = None,
    headers: Mapping[str, str | list[str]] | None = None,
    query: Mapping[str, str | list[str]] | None = None,
    multi_value: bool = False,
    **overrides: Any,
) -> dict[str, Any]:
    """An Application Load Balancer event, as AWS documents it.

    ``multi_value``: the target group's multi-value headers setting (then
    ``multiValueHeaders`` and ``multiValueQueryStringParameters``). Query
    parameters are percent-encoded, as ALB passes them.
    """
    from urllib.parse import quote_plus

    header_lists = {
        name.lower(): values
        for name, values in _value_lists(
            {
                "Host": "lambda-alb-123578498.us-east-1.elb.amazonaws.com",
                "User-Agent": _TEST_AGENT,
                "X-Forwarded-For": _TEST_IP,
                "X-Forwarded-Port": "443",
                "X-Forwarded-Proto": "https",
                **_content_type(body),
                **(headers or {}),
            }
        ).items()
    }
    query_lists = {
        quote_plus(name): [quote_plus(v) for v in values]
        for name, values in _value_lists(query or {}).items()
    }
    text, is_base64 = _event_body(body)
    event: dict[str, Any] = {
        "requestContext": {
            "elb": {
                "targetGroupArn": f"arn:aws:elasticloadbalancing:{_TEST_REGION}:{_TEST_ACCOUNT}:targetgroup/lambda-279XGJDqGZ5rsrHC2Fjr/49e9d65c45c6791a"
            }
        },
        "httpMethod": method.upper(),
        "path": path,
    }
    if multi_value:
        event["multiValueQueryStringParameters"] = query_lists
        event["multiValueHeaders"] = header_lists
    else:
        event["queryStringParameters"] = {
            name: values[-1] for name, values in query_lists.items()
        }
        event["headers"] = {name: values[-1] for name, values in header_lists.items()}
    event["body"] = text
    event["isBase64Encoded"] = is_base64
    return _merged(event, overrides)


def s3_event(
    bucket: str = "example-bucket",
    key: str = "example.txt",
    *,
    event_name: str = "ObjectCreated:Put",
    size: int = 1024,
    **overrides: Any,
) -> dict[str, Any]:
    """An S3 notification of one object, as AWS documents it (the key URL-encoded).

    ``overrides`` are merged into the record.
    """
    from urllib.parse import quote_plus

    record = {
        "eventVersion": "2.1",
        "eventSource": "aws:s3",
        "awsRegion": _TEST_REGION,
        "eventTime": _iso_now(),
        "eventName": event_name,
        "userIdentity": {"principalId": "AWS:AIDAINPONIXQXHT3IKHL2"},
        "requestParameters": {"sourceIPAddress": _TEST_IP},
        "responseElements": {
            "x-amz-request-id": "C3D13FE58DE4C810",
            "x-amz-id-2": "FMyUVURIY8/IgAtTv8xRjskZQpcIZ9KG4V5Wp6S7S/JRWeUWerMUE5JgHvANOjpD",
        },
        "s3": {
            "s3SchemaVersion": "1.0",
            "configurationId": "testConfigRule",
            "bucket": {
                "name": bucket,
                "ownerIdentity": {"principalId": "A3NL1KOZZKExample"},
                "arn": f"arn:aws:s3:::{bucket}",
            },
            "object": {
                "key": quote_plus(key, safe="/"),
                "size": size,
                "eTag": "d41d8cd98f00b204e9800998ecf8427e",
                "sequencer": "0A1B2C3D4E5F678901",
            },
        },
    }
    return {"Records": [_merged(record, overrides)]}


def sqs_event(
    *bodies: object, queue: str = "example-queue", **overrides: Any
) -> dict[str, Any]:
    """A batch of SQS messages, one per body (text, or a value sent as JSON), as AWS documents it.

    Each message gets its own id; a queue whose name ends in ``.fifo`` gets
    FIFO attributes. ``overrides`` are merged into every record.
    """
    import hashlib

    records = []
    now = str(int(time.time() * 1000))
    for index, body in enumerate(bodies or ("Test message.",)):
        text = body if isinstance(body, str) else json_dumps(body)
        attributes = {
            "ApproximateReceiveCount": "1",
            "SentTimestamp": now,
            "SenderId": "AIDAIENQZJOLO23YVJ4VO",
            "ApproximateFirstReceiveTimestamp": now,
        }
        if queue.endswith(".fifo"):
            attributes.update(
                MessageGroupId="1",
                MessageDeduplicationId=_new_id(),
                SequenceNumber=f"{18849496460467696128 + index}",
            )
        record = {
            "messageId": _new_id(),
            "receiptHandle": f"AQEBwJnKyrHigUMZj6rYigCgxlaS3SLy0a{index}...",
            "body": text,
            "attributes": attributes,
            "messageAttributes": {},
            "md5OfBody": hashlib.md5(text.encode(), usedforsecurity=False).hexdigest(),
            "eventSource": "aws:sqs",
            "eventSourceARN": f"arn:aws:sqs:{_TEST_REGION}:{_TEST_ACCOUNT}:{queue}",
            "awsRegion": _TEST_REGION,
        }
        records.append(_merged(record, overrides))
    return {"Records": records}


def sns_event(
    message: object = "Hello from SNS!",
    *,
    topic: str = "example-topic",
    subject: str | None = None,
    **overrides: Any,
) -> dict[str, Any]:
    """An SNS notification of one message (text, or a value sent as JSON), as AWS documents it.

    ``overrides`` are merged into the record.
    """
    topic_arn = f"arn:aws:sns:{_TEST_REGION}:{_TEST_ACCOUNT}:{topic}"
    record = {
        "EventVersion": "1.0",
        "EventSubscriptionArn": f"{topic_arn}:21be56ed-a058-49f5-8c98-aedd2564c486",
        "EventSource": "aws:sns",
        "Sns": {
            "SignatureVersion": "1",
            "Timestamp": _iso_now(),
            "Signature": "tcc6faL2yUC6dgZdmrwh1Y4cGa/ebXEkAi6RibDsvpi+tE/1+82j...65r==",
            "SigningCertUrl": "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-ac565b8b1a6c5d002d285f9598aa1d9b.pem",
            "MessageId": _new_id(),
            "Message": message if isinstance(message, str) else json_dumps(message),
            "MessageAttributes": {},
            "Type": "Notification",
            "UnsubscribeUrl": f"https://sns.us-east-1.amazonaws.com/?Action=Unsubscribe&SubscriptionArn={topic_arn}",
            "TopicArn": topic_arn,
            "Subject": subject,
        },
    }
    return {"Records": [_merged(record, overrides)]}


def eventbridge_event(
    detail: object = None,
    *,
    source: str = "com.example.orders",
    detail_type: str = "Order Placed",
    **overrides: Any,
) -> dict[str, Any]:
    """An EventBridge event, as AWS documents it; ``overrides`` replace its fields."""
    event = {
        "version": "0",
        "id": _new_id(),
        "detail-type": detail_type,
        "source": source,
        "account": _TEST_ACCOUNT,
        "time": _iso_now(seconds_only=True),
        "region": _TEST_REGION,
        "resources": [],
        "detail": {} if detail is None else detail,
    }
    return _merged(event, overrides)


def dynamodb_event(
    *items: Mapping[str, Any],
    table: str = "example-table",
    event_name: str = "INSERT",
    key: str | tuple[str, ...] = "id",
    **overrides: Any,
) -> dict[str, Any]:
    """A batch of DynamoDB Streams records, one per item (plain Python values), as AWS documents it.

    ``event_name``: ``INSERT`` and ``MODIFY`` carry the item as the new
    image, ``REMOVE`` as the old one; ``key`` names the key attributes.
    Values are written in DynamoDB's typed JSON. ``overrides`` are merged
    into every record.
    """
    key_names = (key,) if isinstance(key, str) else key
    records = []
    for index, item in enumerate(items or ({"id": "1"},)):
        typed = {name: _dynamodb_typed(value) for name, value in item.items()}
        change: dict[str, Any] = {
            "ApproximateCreationDateTime": int(time.time()),
            "Keys": {name: typed[name] for name in key_names if name in typed},
            "SequenceNumber": str(4421584500000000017450439091 + index),
            "SizeBytes": 26,
            "StreamViewType": "NEW_AND_OLD_IMAGES",
        }
        change["OldImage" if event_name == "REMOVE" else "NewImage"] = typed
        record = {
            "eventID": _new_id().replace("-", ""),
            "eventName": event_name,
            "eventVersion": "1.1",
            "eventSource": "aws:dynamodb",
            "awsRegion": _TEST_REGION,
            "dynamodb": change,
            "eventSourceARN": f"arn:aws:dynamodb:{_TEST_REGION}:{_TEST_ACCOUNT}:table/{table}/stream/2024-06-10T19:26:16.525",
        }
        records.append(_merged(record, overrides))
    return {"Records": records}


def kinesis_event(
    *data: object,
    stream: str = "example-stream",
    partition_key: str = "1",
    **overrides: Any,
) -> dict[str, Any]:
    """A batch of Kinesis records, one per datum (bytes, text, or a value sent as JSON), as AWS documents it.

    ``overrides`` are merged into every record.
    """
    import binascii

    records = []
    for index, datum in enumerate(data or ("Hello, this is a test.",)):
        raw = (
            datum
            if isinstance(datum, bytes)
            else (datum if isinstance(datum, str) else json_dumps(datum)).encode()
        )
        sequence = str(49590338271490256608559692538361571095921575989136588898 + index)
        record = {
            "kinesis": {
                "kinesisSchemaVersion": "1.0",
                "partitionKey": partition_key,
                "sequenceNumber": sequence,
                "data": binascii.b2a_base64(raw, newline=False).decode("ascii"),
                "approximateArrivalTimestamp": round(time.time(), 3),
            },
            "eventSource": "aws:kinesis",
            "eventVersion": "1.0",
            "eventID": f"shardId-000000000006:{sequence}",
            "eventName": "aws:kinesis:record",
            "invokeIdentityArn": f"arn:aws:iam::{_TEST_ACCOUNT}:role/lambda-role",
            "awsRegion": _TEST_REGION,
            "eventSourceARN": f"arn:aws:kinesis:{_TEST_REGION}:{_TEST_ACCOUNT}:stream/{stream}",
        }
        records.append(_merged(record, overrides))
    return {"Records": records}


def _http_api_shaped(
    method: str,
    path: str,
    body: object,
    headers: Mapping[str, str | list[str]] | None,
    query: Mapping[str, str | list[str]] | None,
    cookies: Mapping[str, str] | None,
    path_params: Mapping[str, str] | None,
    stage: str,
    route_key: str,
    domain: str,
    authorizer: dict[str, Any] | None,
    overrides: dict[str, Any],
) -> dict[str, Any]:
    """The 2.0 payload shared by HTTP APIs and function URLs."""
    from urllib.parse import urlencode

    header_lists = _value_lists(
        {
            "host": domain,
            "user-agent": _TEST_AGENT,
            "x-forwarded-for": _TEST_IP,
            "x-forwarded-port": "443",
            "x-forwarded-proto": "https",
            **_content_type(body),
            **(headers or {}),
        }
    )
    query_lists = _value_lists(query or {})
    raw_path = path if stage == "$default" else f"/{stage}{path}"
    text, is_base64 = _event_body(body)
    now = time.time()
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": route_key,
        "rawPath": raw_path,
        "rawQueryString": urlencode(
            [(name, value) for name, values in query_lists.items() for value in values]
        ),
    }
    if cookies:
        event["cookies"] = [f"{name}={value}" for name, value in cookies.items()]
    event["headers"] = {
        name.lower(): ",".join(values) for name, values in header_lists.items()
    }
    if query_lists:
        event["queryStringParameters"] = {
            name: ",".join(values) for name, values in query_lists.items()
        }
    request_context: dict[str, Any] = {
        "accountId": _TEST_ACCOUNT if ".lambda-url." not in domain else "anonymous",
        "apiId": domain.partition(".")[0],
        "domainName": domain,
        "domainPrefix": domain.partition(".")[0],
        "http": {
            "method": method.upper(),
            "path": raw_path,
            "protocol": "HTTP/1.1",
            "sourceIp": _TEST_IP,
            "userAgent": _TEST_AGENT,
        },
        "requestId": _new_id(),
        "routeKey": route_key,
        "stage": stage,
        "time": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)),
        "timeEpoch": int(now * 1000),
    }
    if authorizer is not None:
        request_context["authorizer"] = authorizer
    event["requestContext"] = request_context
    if text:
        event["body"] = text
    if path_params:
        event["pathParameters"] = dict(path_params)
    event["isBase64Encoded"] = is_base64
    return _merged(event, overrides)


def _lambda_event_defaults() -> dict[str, Any]:
    """The parts of `LambdaEvent`'s events when none are given: fleece 1.x's."""
    return {
        "body": {},
        "gateway": {
            "http-method": "GET",
            "request-id": _new_id(),
            "resource-path": "/bogus/path/",
            "stage": "test_stage",
            "stage-data": {},
        },
        "header": {
            "Accept": "*/*",
            "Accept-Encoding": "gzip, deflate",
            "CloudFront-Forwarded-Proto": "https",
            "CloudFront-Is-Desktop-Viewer": "true",
            "CloudFront-Is-Mobile-Viewer": "false",
            "CloudFront-Is-SmartTV-Viewer": "false",
            "CloudFront-Is-Tablet-Viewer": "false",
            "CloudFront-Viewer-Country": "US",
            "Host": "BOGUS.execute-api.us-east-1.amazonaws.com",
            "User-Agent": "python-requests/2.9.1",
            "Via": "1.1 BOGUS.cloudfront.net (CloudFront)",
            "X-Amz-Cf-Id": "FAKE_TID",
            "X-Forwarded-For": "127.0.0.1",
            "X-Forwarded-Port": "443",
            "X-Forwarded-Proto": "https",
            "x-auth-token": "FAKE_TOKEN",
        },
        "operation": "test:operation",
        "path": {},
        "querystring": {},
        "requestor": {
            "account-id": "",
            "api-key": "",
            "caller": "",
            "source-ip": "127.0.0.1",
            "user": "",
            "user-agent": "python-requests/2.9.1",
            "user-arn": "",
        },
    }


def _value_lists(values: Mapping[str, str | list[str]]) -> dict[str, list[str]]:
    return {
        name: list(value) if isinstance(value, list) else [value]
        for name, value in values.items()
    }


def _content_type(body: object) -> dict[str, str]:
    if body is None:
        return {}
    if isinstance(body, bytes):
        return {"Content-Type": "application/octet-stream"}
    if isinstance(body, str):
        return {"Content-Type": "text/plain"}
    return {"Content-Type": "application/json"}


def _event_body(body: object) -> tuple[str | None, bool]:
    """(the event's ``body``, ``isBase64Encoded``) for a body given to a builder."""
    if body is None:
        return None, False
    if isinstance(body, bytes):
        import binascii

        return binascii.b2a_base64(body, newline=False).decode("ascii"), True
    if isinstance(body, str):
        return body, False
    return json_dumps(body), False


def _merged(base: dict[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` with ``overrides``: nested objects merged, other values replaced."""
    for name, value in overrides.items():
        current = base.get(name)
        if isinstance(current, dict) and isinstance(value, Mapping):
            base[name] = _merged(current, value)
        else:
            base[name] = value
    return base


def _new_id() -> str:
    import uuid

    return str(uuid.uuid4())


def _iso_now(seconds_only: bool = False) -> str:
    now = time.time()
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now))
    return f"{stamp}Z" if seconds_only else f"{stamp}.{int(now % 1 * 1000):03d}Z"


def _dynamodb_typed(value: object) -> dict[str, Any]:
    """A plain Python value in DynamoDB's typed JSON."""
    if isinstance(value, bool):
        return {"BOOL": value}
    if value is None:
        return {"NULL": True}
    if isinstance(value, str):
        return {"S": value}
    if isinstance(value, (int, float)) or type(value).__name__ == "Decimal":
        return {"N": str(value)}
    if isinstance(value, bytes):
        import binascii

        return {"B": binascii.b2a_base64(value, newline=False).decode("ascii")}
    if isinstance(value, Mapping):
        return {"M": {name: _dynamodb_typed(v) for name, v in value.items()}}
    if isinstance(value, (set, frozenset)):
        typed = [_dynamodb_typed(v) for v in value]
        kind = next(iter(typed[0])) if typed else "S"
        return {kind + "S": sorted(next(iter(t.values())) for t in typed)}
    if isinstance(value, (list, tuple)):
        return {"L": [_dynamodb_typed(v) for v in value]}
    raise TypeError(f"DynamoDB cannot hold a {type(value).__name__}: {value!r}")


class _TestingNamespace:
    """Test helpers, as ``from fleece_runtime import testing`` (was ``fleece.testing``)."""

    __slots__ = ()
    LambdaContext = LambdaContext
    LambdaEvent = LambdaEvent
    LambdaRequestGenerator = LambdaRequestGenerator
    dict_update = staticmethod(dict_update)
    rest_api_event = staticmethod(rest_api_event)
    http_api_event = staticmethod(http_api_event)
    function_url_event = staticmethod(function_url_event)
    alb_event = staticmethod(alb_event)
    s3_event = staticmethod(s3_event)
    sqs_event = staticmethod(sqs_event)
    sns_event = staticmethod(sns_event)
    eventbridge_event = staticmethod(eventbridge_event)
    dynamodb_event = staticmethod(dynamodb_event)
    kinesis_event = staticmethod(kinesis_event)


testing = _TestingNamespace()


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


class Unauthorized(HTTPError):
    """A Rackspace token is missing or refused: an `HTTPError` 401.

    ``str()`` is fleece 1.x's ``401: Unauthorized``, followed by `` - `` and
    the reason when there is one; a `Router` answers it with a 401.
    """

    default_status = 401

    def __init__(self, reason: str | None = None) -> None:
        super().__init__(401, reason)


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


# ---------------------------------------------------------------------------
# HTTP client: pooled, retried, deadline-bound, signed and traced calls
# ---------------------------------------------------------------------------

_HTTP_TIMEOUT = (5.0, 30.0)  # connect, read: seconds
_HTTP_RETRIES = 3
_HTTP_BACKOFF = 0.2
_HTTP_MAX_DELAY = 20.0
_HTTP_RETRY_STATUSES = frozenset({429, 502, 503, 504})
_HTTP_POOL_SIZE = 10
_HTTP_ROUTES = 256  # origins whose proxy decision a client keeps
_IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"})
_RESPONSE_PARAMETERS = ("response", "response_body", "response_code")
_MASK = "***"
# Header and query parameter names whose values never reach a log line or an
# error message: these names, and every name containing one of the words.
_SECRET_NAMES = frozenset({"sig", "code", "pwd", "jwt"})
_SECRET_WORDS = (
    "auth",
    "cookie",
    "credential",
    "key",
    "passw",
    "secret",
    "session",
    "signature",
    "token",
)


class HttpClient:
    """An HTTP client for calls from a Lambda function: pooled, retried, bounded, signed.

    Create one per process (at import, beside the handler) and reuse it:
    its connections stay open across invocations::

        orders = HttpClient("https://orders.example.com/v1", timeout=5)

        @log.inject_request_ids_into_environment
        def handler(event, context):
            order = orders.get(f"orders/{event['id']}").raise_for_status().json()

    It needs only the standard library (``http.client``); botocore is imported
    to sign requests, and only then.

    - ``timeout``: seconds, or ``(connect, read)``; 5 s to connect and 30 s
      for each read by default.
    - ``retries`` (3): answers 429, 502, 503 and 504 (``retry_statuses``) and
      connection errors are retried that many times, with exponential
      backoff and full jitter (a random wait up to ``backoff * 2**n``
      seconds, at most ``max_delay``) or the wait the server asks for in
      ``Retry-After`` (seconds or an HTTP date; a longer one than
      ``max_delay`` ends the retries). Only idempotent methods (GET, HEAD,
      OPTIONS, PUT, DELETE, TRACE) are retried once a request may have
      reached the server; pass ``idempotent=True`` for a POST that is safe
      to repeat. A connection that could not be opened never carried the
      request, so it is retried whatever the method. Each retry is logged
      (logger ``fleece_runtime.http``) with the attempt, the wait and the
      reason.
    - Deadlines: no attempt starts, and no wait ends, after the deadline:
      the current invocation's (its remaining time minus 0.5 s, when the
      handler is decorated with `inject_request_ids_into_environment` or
      runs in `lambda_invocation`), the one set with `deadline`, or
      ``total_timeout`` seconds after the request started, whichever comes
      first. Each attempt's timeouts shrink to the time left.
    - ``headers``: sent with every request (a request's own win).
    - ``sign``: requests to API Gateway hosts (``*.execute-api.<region>.
      amazonaws.com``) are signed with AWS Signature Version 4 by default
      (``None``), with the current credentials (the function's role; or
      ``credentials=``, botocore credentials); ``sign="execute-api"`` (or
      True) or another service name signs every request (custom domains);
      ``sign=False`` never signs. The region is ``region=``, else the one in
      the host name, else ``AWS_REGION``.
    - ``verify``: check TLS certificates (True), or the path of a CA bundle,
      or False. ``pool_size``: idle connections kept per host.
    - ``proxies``: the HTTP proxy for each scheme of the targets,
      ``{"https": "http://proxy:3128", "http": ...}`` (either key
      optional, and ``"no_proxy"`` as below), in place of the
      environment's; ``{}`` or False: none. By default (None, with
      ``trust_env=True``) they come from the environment, as requests
      reads it: ``https_proxy``, ``http_proxy``, else
      ``all_proxy``, and ``no_proxy`` (each in lower case, else in UPPER
      case). The variables are read once, when the client is created
      (usually at import, beside the handler), never later;
      ``trust_env=False`` ignores them. NO_PROXY lists the hosts reached
      directly, separated by commas or spaces: a name matches itself and
      its subdomains (``example.com`` and ``.example.com`` both match
      ``api.example.com``), an IP address or range (``10.0.0.0/8``)
      matches hosts given by address, ``:port`` limits an entry to that
      port, and ``*`` turns proxies off (an entry that is none of these is
      skipped with a warning). A proxy URL is
      ``http://[user:password@]host[:port]`` (``host:port`` alone means
      http); its credentials (split at the last ``@``, percent-decoded)
      are sent in ``Proxy-Authorization`` and never logged. An https:// or
      other proxy URL raises ``ValueError``. botocore (the Lambda
      invocations of `method`) reads the environment its own way. http:// targets are asked of the
      proxy by their absolute URL, on connections to the proxy kept for
      every host; https:// targets go through a ``CONNECT`` tunnel with
      TLS end to end, checked as ``verify`` says. The connect timeout
      bounds each wait on the proxy while connecting and opening the
      tunnel. A tunnel the
      proxy refuses raises `HttpConnectionError` (a refusal in the 4xx
      range, 407 or 403, is not retried).
    - ``lambda_config``: a botocore ``Config`` merged over the defaults of
      the Lambda invocations of `method` (see `invoke`).

    When the invocation is traced with X-Ray, each call is a ``remote``
    subsegment and the trace is passed on (`trace_http_call`). Secrets never
    reach a log line or an error message: the values of credentials,
    cookies, tokens and signatures in headers and query strings are masked,
    and bodies are never logged. Redirects are not followed: a 3xx answer
    is returned as it is.
    """

    def __init__(
        self,
        base_url: str | None = None,
        *,
        timeout: float | tuple[float, float] = _HTTP_TIMEOUT,
        retries: int = _HTTP_RETRIES,
        headers: Mapping[str, str] | None = None,
        sign: bool | str | None = None,
        region: str | None = None,
        credentials: Any = None,
        total_timeout: float | None = None,
        backoff: float = _HTTP_BACKOFF,
        max_delay: float = _HTTP_MAX_DELAY,
        retry_statuses: Iterable[int] = _HTTP_RETRY_STATUSES,
        verify: bool | str = True,
        proxies: Mapping[str, str | None] | bool | None = None,
        trust_env: bool = True,
        pool_size: int = _HTTP_POOL_SIZE,
        lambda_config: Any = None,
    ) -> None:
        if base_url is not None:
            _split_url(base_url)
            base_url = base_url.rstrip("/")
        if not (sign is None or isinstance(sign, bool | str)) or sign == "":
            raise TypeError(
                f"sign must be None, True, False or a service name, not {sign!r}"
            )
        self.base_url = base_url
        self.timeout = _http_timeouts(timeout)
        self.retries = _count("retries", retries)
        self.headers = _checked_headers(headers or {})
        self.sign = "execute-api" if sign is True else sign
        self.region = region
        self.total_timeout = _check_timeout("total_timeout", total_timeout)
        self.backoff = _non_negative("backoff", backoff)
        self.max_delay = _non_negative("max_delay", max_delay)
        self.retry_statuses = frozenset(retry_statuses)
        if not all(isinstance(status, int) for status in self.retry_statuses):
            raise TypeError(f"retry_statuses must be numbers, not {retry_statuses!r}")
        if not isinstance(verify, bool | str):
            raise TypeError(f"verify must be True, False or a path, not {verify!r}")
        self.verify = verify
        self._proxies, self._no_proxy = _proxy_settings(proxies, trust_env)
        self._routes: dict[tuple[str, str, int], _Proxy | None] = {}
        self.pool_size = _count("pool_size", pool_size)
        self.lambda_config = lambda_config
        self._credentials = credentials
        self._idle: dict[tuple[str | int, ...], list[Any]] = {}
        self._lock = threading.Lock()
        self._deadline: contextvars.ContextVar[Deadline | None] = (
            contextvars.ContextVar("fleece_http_deadline", default=None)
        )
        self._log = get_logger("fleece_runtime.http")
        self._user_agent = (
            f"fleece_runtime python/{sys.version_info[0]}.{sys.version_info[1]}"
        )

    def __repr__(self) -> str:
        return f"<HttpClient {self.base_url}>" if self.base_url else "<HttpClient>"

    def request(
        self,
        method: str,
        url: str,
        *,
        params: Mapping[str, Any] | Iterable[tuple[str, Any]] | None = None,
        headers: Mapping[str, str] | None = None,
        json: Any = None,
        data: bytes | str | Mapping[str, Any] | None = None,
        timeout: float | tuple[float, float] | None = None,
        retries: int | None = None,
        idempotent: bool | None = None,
    ) -> HttpResponse:
        """Send one request (retried as the client says) and return its answer.

        ``url`` is absolute, or a path joined to ``base_url`` (``"orders/7"``
        and ``"/orders/7"`` both give ``<base_url>/orders/7``). ``params``
        are added to its query string (a list value repeats the name; None
        values are left out). The body is ``json`` (any value `JsonEncoder`
        writes, sent as ``application/json``) or ``data`` (bytes as they
        are, text in UTF-8, a mapping form-encoded). ``timeout``, ``retries``
        and ``idempotent`` override the client's for this request.

        Every answer is returned, whatever its status (see
        `HttpResponse.raise_for_status`). Raises `HttpConnectionError` when
        no answer came (`HttpTimeoutError` when time ran out), and
        ``ValueError`` or ``TypeError`` for a malformed URL, header or body,
        and ``RuntimeError`` when a request to sign finds no AWS
        credentials: those before anything is sent.
        """
        verb = _http_method(method)
        full_url = self._url(url, params)
        scheme, host, port, target = _split_url(full_url)
        origin = (scheme, host, port)
        proxy = self._proxy_for(origin) if self._proxies else None
        body, content_type = _request_body(json, data)
        request_headers = {
            "User-Agent": self._user_agent,
            "Accept": "*/*",
            "Accept-Encoding": "gzip, deflate",
            **self.headers,
        }
        if content_type is not None:
            request_headers["Content-Type"] = content_type
        if headers:
            request_headers.update(_checked_headers(headers))
        signing = self._signing(host, full_url)
        if signing is not None:
            self._signing_credentials(full_url)  # no credentials: fail before sending
        request = _HttpRequest(
            verb,
            full_url,
            origin,
            target,
            body,
            request_headers,
            verb in _IDEMPOTENT_METHODS if idempotent is None else idempotent,
            signing,
            proxy,
        )
        limits = self.timeout if timeout is None else _http_timeouts(timeout)
        attempts = 1 + (self.retries if retries is None else _count("retries", retries))
        started = time.monotonic()
        with trace_http_call(verb, full_url) as call:
            for name, value in call.headers.items():
                request_headers.setdefault(name, value)
            response = self._send(request, limits, attempts, self._current_deadline())
            call.record(response.status, len(response.content))
        if self._log.isEnabledFor(logging.DEBUG):
            via: dict[str, Any] = {} if proxy is None else {"proxy": proxy.shown}
            self._log.debug(
                "HTTP request",
                method=verb,
                url=_masked_url(full_url),
                status=response.status,
                attempts=response.attempts,
                elapsed=round(time.monotonic() - started, 6),
                headers=_masked_headers(request_headers),
                **via,
            )
        return response

    def get(self, url: str, **options: Any) -> HttpResponse:
        """A GET request: see `request` for ``url`` and the options."""
        return self.request("GET", url, **options)

    def head(self, url: str, **options: Any) -> HttpResponse:
        """A HEAD request: see `request` for ``url`` and the options."""
        return self.request("HEAD", url, **options)

    def options(self, url: str, **options: Any) -> HttpResponse:
        """An OPTIONS request: see `request` for ``url`` and the options."""
        return self.request("OPTIONS", url, **options)

    def post(self, url: str, **options: Any) -> HttpResponse:
        """A POST request (not retried once sent, unless ``idempotent=True``): see `request`."""
        return self.request("POST", url, **options)

    def put(self, url: str, **options: Any) -> HttpResponse:
        """A PUT request: see `request` for ``url`` and the options."""
        return self.request("PUT", url, **options)

    def patch(self, url: str, **options: Any) -> HttpResponse:
        """A PATCH request (not retried once sent, unless ``idempotent=True``): see `request`."""
        return self.request("PATCH", url, **options)

    def delete(self, url: str, **options: Any) -> HttpResponse:
        """A DELETE request: see `request` for ``url`` and the options."""
        return self.request("DELETE", url, **options)

    def deadline(
        self, limit: Any, *, margin: float = _DEADLINE_MARGIN
    ) -> _DeadlineScope:
        """A context manager: this client's requests in the block end by ``limit``.

        ``limit`` is a Lambda context (its remaining time minus ``margin``
        seconds), a number of seconds from now, or a `Deadline`::

            with orders.deadline(context):       # an undecorated handler
                orders.get("orders/7")

        The invocation's own deadline and ``total_timeout`` still apply when
        sooner. The block belongs to the thread or task that entered it.
        """
        if isinstance(limit, Deadline):
            chosen = limit
        elif callable(getattr(limit, "get_remaining_time_in_millis", None)):
            chosen = Deadline.from_context(limit, margin=margin)
        else:
            chosen = Deadline(limit)
        return _DeadlineScope(self._deadline, chosen)

    def method(
        self,
        method: str = "GET",
        url: str = "",
        *,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        body: str | None = None,
        timeout: float | tuple[float, float] | None = None,
        retries: int | None = None,
        idempotent: bool | None = None,
    ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """Decorator: calling the function makes the HTTP request it declares.

        ::

            http = HttpClient()

            @http.method(
                method="POST",
                url="https://{STAGE}.example.com/{api_version}/offers",
                params={"email": "{email}"},
                body="customer",
            )
            def send_offer(api_version, email, customer): ...

            send_offer("v1", "ann@example.com", customer)

        Placeholders in ``url``, ``params`` and ``headers`` values are filled
        in on every call: lowercase ones (``{email}``, ``{customer.id}``)
        from the call's arguments, UPPERCASE ones (``{STAGE}``) from
        environment variables. Argument values are percent-encoded in the
        URL (a ``/`` stays inside its path segment); environment values go in
        as they are. A ``params`` value that is exactly one placeholder keeps
        the argument's value (a list repeats the name, None leaves it out).
        ``body`` names the argument sent as the body: a dict, list,
        dataclass or model (``model_dump()``/``dict()``) as JSON through
        `JsonEncoder`, bytes as they are, text in UTF-8.

        A function that declares a ``response``, ``response_body`` (the text)
        or ``response_code`` (the status) parameter is then called with them
        and its result returned: it handles every status itself. A function
        that declares none is not called: the `HttpResponse` is returned,
        and `HttpStatusError` raised for a status of 300 or more.

        ``method="FUNC"`` invokes the Lambda function named by ``url`` (see
        `invoke`: a name, ``{STAGE}-orders``, a partial or full ARN) with
        ``body`` as the payload and ``params`` as the client context;
        ``"EVENT"`` invokes it asynchronously. ``response`` is then the
        `InvokeResult`, ``response_body`` its payload text (for EVENT, the
        response metadata as JSON) and ``response_code`` its status; without
        them, the `InvokeResult` is returned and a function error raises
        `FunctionError`.

        A placeholder that is neither a parameter of the function nor
        UPPERCASE, a ``body`` that is not a parameter, or an unknown method
        raise when decorating; a missing environment variable, a malformed
        URL or an unsupported body raise when called, before anything is
        sent.
        """
        return _DeclaredCall(
            self,
            _declared_method(method),
            url,
            params or {},
            headers or {},
            body,
            {"timeout": timeout, "retries": retries, "idempotent": idempotent},
        ).decorate

    def close(self) -> None:
        """Close the idle connections (the client stays usable)."""
        with self._lock:
            idle, self._idle = self._idle, {}
        for connections in idle.values():
            for connection in connections:
                connection.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _url(
        self, url: str, params: Mapping[str, Any] | Iterable[tuple[str, Any]] | None
    ) -> str:
        if not isinstance(url, str):
            raise TypeError(f"url must be a string, not {url!r}")
        if self.base_url is not None and "://" not in url:
            url = f"{self.base_url}/{url.lstrip('/')}" if url else self.base_url
        if params:
            from urllib.parse import quote, urlencode

            pairs = params.items() if isinstance(params, Mapping) else params
            query = urlencode(
                [(name, value) for name, value in pairs if value is not None],
                doseq=True,
                quote_via=quote,
            )
            if query:
                url = f"{url}{'&' if '?' in url else '?'}{query}"
        return url

    def _proxy_for(self, origin: tuple[str, str, int]) -> _Proxy | None:
        """The proxy of the requests to ``origin`` (None: direct), decided once."""
        try:
            return self._routes[origin]
        except KeyError:
            pass
        scheme, host, port = origin
        proxy = self._proxies.get(scheme)
        if proxy is not None and _bypasses_proxy(self._no_proxy, host, port):
            proxy = None
        if len(self._routes) >= _HTTP_ROUTES:  # a client calling ever new hosts
            self._routes.clear()
        self._routes[origin] = proxy
        return proxy

    def _current_deadline(self) -> Deadline | None:
        """The soonest of the block's deadline, the invocation's and total_timeout."""
        by_block = self._deadline.get()
        by_call = current_deadline(self.total_timeout)
        if by_block is None or by_call is None:
            return by_block or by_call
        return by_block if by_block.remaining() <= by_call.remaining() else by_call

    def _signing(self, host: str, url: str) -> tuple[str, str] | None:
        """(service, region) to sign a request to ``host`` with, or None."""
        if self.sign is False:
            return None
        labels = host.split(".")
        if self.sign is None:  # API Gateway's hosts: <id>.execute-api.<region>...
            if labels[1:2] != ["execute-api"] or not host.endswith(
                (".amazonaws.com", ".amazonaws.com.cn")
            ):
                return None
            service = "execute-api"
        else:
            service = self.sign
        region = (
            self.region
            or next((label for label in labels if _is_region(label)), None)
            or os.environ.get("AWS_REGION")
        )
        if not region:
            raise ValueError(
                f"no AWS region to sign {_masked_url(url)} with: its host names "
                f"none and AWS_REGION is not set (pass region=)"
            )
        return service, region

    def _signing_credentials(self, url: str) -> Any:
        """The credentials to sign with, as of now (they may be refreshed)."""
        credentials = self._credentials
        if credentials is None:
            try:
                import botocore.session
            except ImportError as error:
                raise _missing("boto3", error) from None
            credentials = botocore.session.get_session().get_credentials()
            if credentials is None:
                raise RuntimeError(
                    f"no AWS credentials to sign {_masked_url(url)} with: give the "
                    f"function a role (or set AWS_ACCESS_KEY_ID and "
                    f"AWS_SECRET_ACCESS_KEY), pass credentials=, or sign=False"
                )
            self._credentials = credentials
        frozen = getattr(credentials, "get_frozen_credentials", None)
        return frozen() if callable(frozen) else credentials

    def _signed(self, request: _HttpRequest) -> dict[str, str]:
        """The request's headers with a fresh SigV4 signature."""
        from botocore.auth import SigV4Auth
        from botocore.awsrequest import AWSRequest

        assert request.signing is not None
        service, region = request.signing
        signed = AWSRequest(
            method=request.method,
            url=request.url,
            data=request.body or b"",
            headers=request.headers,
        )
        credentials = self._signing_credentials(request.url)
        SigV4Auth(credentials, service, region).add_auth(signed)
        headers = dict(request.headers)
        for name in ("Authorization", "X-Amz-Date", "X-Amz-Security-Token"):
            value = signed.headers.get(name)
            if value is not None:
                headers[name] = value
        return headers

    def _send(
        self,
        request: _HttpRequest,
        limits: tuple[float, float],
        attempts: int,
        deadline: Deadline | None,
    ) -> HttpResponse:
        """The retry loop: attempts, waits, and when to give up."""
        import random

        attempt = 0
        reopened = False  # a kept connection the server had closed: once, for free
        failure: _AttemptError | None = None
        response: HttpResponse | None = None  # the last answer, to retry or return
        while True:
            attempt += 1
            connect_limit, read_limit = limits
            if deadline is not None:
                left = deadline.remaining()
                if left <= 0:
                    if response is not None:
                        return response
                    raise _gave_up(request, attempt - 1, failure, out_of_time=True)
                connect_limit, read_limit = min(connect_limit, left), min(
                    read_limit, left
                )
            headers = (
                request.headers if request.signing is None else self._signed(request)
            )
            try:
                answer = self._attempt(request, headers, connect_limit, read_limit)
            except _AttemptError as error:
                if error.stale and request.idempotent and not reopened:
                    reopened, attempt = True, attempt - 1
                    continue
                failure, response = error, None
                retryable = error.retryable and (not error.sent or request.idempotent)
                reason = error.reason
                asked: float | None = None
            else:
                answer.attempts = attempt
                if not request.idempotent or answer.status not in self.retry_statuses:
                    return answer
                failure, response, retryable = None, answer, True
                reason = f"{answer.status} {answer.reason}".rstrip()
                asked = _retry_after(answer.headers.get("retry-after"))
            wait = (
                asked
                if asked is not None
                else random.random()
                * min(self.max_delay, self.backoff * 2.0 ** (attempt - 1))
            )
            out_of_time = deadline is not None and wait >= deadline.remaining()
            if (
                not retryable
                or attempt >= attempts
                or wait > self.max_delay
                or out_of_time
            ):
                if response is not None:
                    return response
                raise _gave_up(request, attempt, failure, out_of_time=out_of_time)
            self._log.warning(
                "Retrying HTTP request",
                method=request.method,
                url=_masked_url(request.url),
                attempt=attempt,
                wait=round(wait, 3),
                reason=reason,
            )
            time.sleep(wait)

    def _attempt(
        self,
        request: _HttpRequest,
        headers: Mapping[str, str],
        connect_timeout: float,
        read_timeout: float,
    ) -> HttpResponse:
        """One exchange on a kept or a new connection; `_AttemptError` on failure."""
        import http.client

        key = request.pool
        connection = self._take(key)
        reused = connection is not None
        if connection is None:
            connection = self._connect(request, connect_timeout)
        proxy = request.proxy
        if proxy is not None and proxy.authorization and request.origin[0] == "http":
            headers = {**headers, "Proxy-Authorization": proxy.authorization}
        started = time.monotonic()
        try:
            connection.sock.settimeout(read_timeout)
            connection.request(request.method, request.target, request.body, headers)
            answer = connection.getresponse()
            content = answer.read()
        except BaseException as error:
            connection.close()
            if not isinstance(error, OSError | http.client.HTTPException):
                raise
            stale = reused and isinstance(
                error,
                http.client.RemoteDisconnected | ConnectionResetError | BrokenPipeError,
            )
            raise _AttemptError(error, sent=True, stale=stale) from error
        if answer.will_close:
            connection.close()
        else:
            self._give(key, connection)
        response_headers = HttpHeaders(answer.getheaders())
        encoding = response_headers.get("content-encoding")
        if encoding and content:
            content = _decoded(content, encoding, request)
        return HttpResponse(
            answer.status,
            answer.reason,
            response_headers,
            content,
            request.method,
            request.url,
            time.monotonic() - started,
        )

    def _connect(self, request: _HttpRequest, timeout: float) -> Any:
        """A new connection to the request's origin, or through its proxy.

        Through a proxy, an https origin is reached through a CONNECT tunnel
        (TLS to the origin inside it); ``timeout`` bounds the TCP connection,
        the tunnel's exchange and the TLS handshake alike.
        """
        import http.client

        scheme, host, port = request.origin
        proxy = request.proxy
        address = (host, port) if proxy is None else (proxy.host, proxy.port)
        connection: http.client.HTTPConnection
        if scheme == "https":
            connection = http.client.HTTPSConnection(
                *address, timeout=timeout, context=_ssl_context(self.verify)
            )
            if proxy is not None:
                connection.set_tunnel(_ascii_host(host), port, proxy.tunnel_headers())
        else:
            connection = http.client.HTTPConnection(*address, timeout=timeout)
        try:
            connection.connect()
        except (OSError, http.client.HTTPException) as error:
            connection.close()  # a proxy's malformed answer is an HTTPException
            raise _connect_failure(error, request) from error
        except BaseException:
            connection.close()
            raise
        return connection

    def _take(self, key: tuple[str | int, ...]) -> Any:
        """A kept connection to ``key`` the server has not closed, or None."""
        while True:
            with self._lock:
                idle = self._idle.get(key)
                if not idle:
                    return None
                connection = idle.pop()
            if not _dropped(connection.sock):
                return connection
            connection.close()

    def _give(self, key: tuple[str | int, ...], connection: Any) -> None:
        with self._lock:
            idle = self._idle.setdefault(key, [])
            if len(idle) < self.pool_size:
                idle.append(connection)
                return
        connection.close()


class HttpResponse:
    """The answer to an `HttpClient` request, read whole.

    ``status`` (also ``status_code``), ``reason``, ``headers`` (an
    `HttpHeaders`: case-insensitive), ``content`` (bytes, decompressed),
    ``text``, `json`, ``ok``; ``method`` and ``url`` of the request,
    ``elapsed`` (seconds of the last attempt) and ``attempts``.
    """

    __slots__ = (
        "attempts",
        "content",
        "elapsed",
        "headers",
        "method",
        "reason",
        "status",
        "url",
    )

    def __init__(
        self,
        status: int,
        reason: str,
        headers: HttpHeaders,
        content: bytes,
        method: str,
        url: str,
        elapsed: float,
    ) -> None:
        self.status = status
        self.reason = reason
        self.headers = headers
        self.content = content
        self.method = method
        self.url = url
        self.elapsed = elapsed
        self.attempts = 1

    def __repr__(self) -> str:
        return f"<HttpResponse {self.status} {self.method} {_masked_url(self.url)}>"

    @property
    def status_code(self) -> int:
        """``status``, under the name requests gives it."""
        return self.status

    @property
    def ok(self) -> bool:
        """True when the status is below 400."""
        return self.status < 400

    @property
    def text(self) -> str:
        """``content`` decoded with the charset of Content-Type (UTF-8 without one)."""
        charset = "utf-8"
        for part in self.headers.get("content-type", "").split(";")[1:]:
            name, _, value = part.strip().partition("=")
            if name.lower() == "charset" and value:
                charset = value.strip('"')
        try:
            return self.content.decode(charset, errors="replace")
        except LookupError:  # a charset Python does not know
            return self.content.decode("utf-8", errors="replace")

    def json(self) -> Any:
        """``content`` parsed as JSON; ``ValueError`` when it is not JSON."""
        try:
            return json.loads(self.content)
        except ValueError as error:
            kind = self.headers.get("content-type", "no Content-Type")
            raise ValueError(
                f"the answer to {self.method} {_masked_url(self.url)} is not JSON "
                f"({self.status}, {kind}): {error}"
            ) from None

    def raise_for_status(self) -> Self:
        """Raise `HttpStatusError` for a status of 400 or more; else return self."""
        if self.status >= 400:
            raise HttpStatusError(self)
        return self


class HttpHeaders(Mapping[str, str]):
    """Response headers: a read-only mapping whose names ignore case.

    A header sent several times reads as its values joined by ``", "``;
    `get_all` gives them one by one (``Set-Cookie``).
    """

    __slots__ = ("_index", "_items")

    def __init__(self, items: Iterable[tuple[str, str]]) -> None:
        self._items = list(items)
        self._index: dict[str, tuple[str, str]] | None = None

    def _lookup(self) -> dict[str, tuple[str, str]]:
        index = self._index
        if index is None:
            index = {}
            for name, value in self._items:
                key = name.lower()
                if key in index:
                    index[key] = (index[key][0], f"{index[key][1]}, {value}")
                else:
                    index[key] = (name, value)
            self._index = index
        return index

    def __getitem__(self, name: str) -> str:
        return self._lookup()[name.lower()][1]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._lookup()

    def __iter__(self) -> Iterator[str]:
        return (name for name, _ in self._lookup().values())

    def __len__(self) -> int:
        return len(self._lookup())

    def __repr__(self) -> str:
        return f"HttpHeaders({_masked_headers(self)!r})"

    def get_all(self, name: str) -> list[str]:
        """Every value of the header ``name``, in the order received."""
        key = name.lower()
        return [value for header, value in self._items if header.lower() == key]


class HttpStatusError(Exception):
    """An HTTP answer with an error status: `HttpResponse.raise_for_status`.

    ``status``, ``reason`` and ``body`` (the answer's text) of the answer,
    ``response`` itself. The message names the status, the method and the
    URL (secrets in its query string masked), not the body. Not the
    server-side ``HTTPError`` that a handler raises to answer with a status:
    a downstream's 404 is not your caller's 404.
    """

    def __init__(self, response: HttpResponse) -> None:
        self.response = response
        self.status = response.status
        self.reason = response.reason
        super().__init__(
            f"{response.status} {response.reason}".rstrip()
            + f" for {response.method} {_masked_url(response.url)}"
        )

    @property
    def body(self) -> str:
        """The text of the answer."""
        return self.response.text


class HttpConnectionError(OSError):
    """No answer: the connection failed, broke, or timed out (after any retries).

    ``method``, ``url`` (masked) and ``attempts``; the last error is the
    ``__cause__``.
    """

    def __init__(self, message: str, method: str, url: str, attempts: int) -> None:
        super().__init__(message)
        self.method = method
        self.url = url
        self.attempts = attempts


class HttpTimeoutError(HttpConnectionError, TimeoutError):
    """No answer in time: a connect or read timeout, or the deadline."""


class _HttpRequest:
    """A request ready to send, as every attempt sends it."""

    __slots__ = (
        "body",
        "headers",
        "idempotent",
        "method",
        "origin",
        "pool",
        "proxy",
        "signing",
        "target",
        "url",
    )

    def __init__(
        self,
        method: str,
        url: str,
        origin: tuple[str, str, int],
        target: str,
        body: bytes | None,
        headers: dict[str, str],
        idempotent: bool,
        signing: tuple[str, str] | None,
        proxy: _Proxy | None,
    ) -> None:
        self.method = method
        self.url = url
        self.origin = origin  # (scheme, host, port)
        self.body = body
        self.headers = headers
        self.idempotent = idempotent
        self.signing = signing
        self.proxy = proxy
        self.pool: tuple[str | int, ...] = origin  # the pool's key
        self.target = target  # path and query: the request line's target
        if proxy is not None:
            self.pool, self.target = proxy.route(origin, target)


class _AttemptError(Exception):
    """An attempt that got no answer, and what that allows."""

    def __init__(
        self,
        error: BaseException,
        *,
        sent: bool,
        stale: bool = False,
        retryable: bool = True,
        reason: str | None = None,
    ) -> None:
        super().__init__(str(error))
        self.error = error
        self.sent = sent  # the request may have reached the server
        self.stale = stale  # a kept connection was closed before any answer
        self.retryable = retryable
        self.reason = reason or f"{type(error).__name__}: {error}".rstrip(": ")


class _Proxy:
    """An HTTP proxy of `HttpClient`: its address, its credentials, its URL masked."""

    __slots__ = ("authorization", "host", "port", "shown")

    def __init__(
        self, host: str, port: int, authorization: str | None, shown: str
    ) -> None:
        self.host = host
        self.port = port
        self.authorization = authorization  # the Proxy-Authorization value
        self.shown = shown  # the URL for messages, its password masked

    def __repr__(self) -> str:
        return f"<proxy {self.shown}>"

    def route(
        self, origin: tuple[str, str, int], target: str
    ) -> tuple[tuple[str | int, ...], str]:
        """(pool key, request target) of a request to ``origin`` through the proxy.

        An https origin has tunnels of its own. Plain HTTP requests to any
        origin share the connections to the proxy, naming their absolute URL.
        """
        scheme, host, port = origin
        if scheme == "https":
            return (scheme, host, port, self.host, self.port), target
        host = _ascii_host(host)
        authority = f"[{host}]" if ":" in host else host
        if port != 80:
            authority = f"{authority}:{port}"
        return ("proxy", self.host, self.port), f"http://{authority}{target}"

    def tunnel_headers(self) -> dict[str, str]:
        """The headers of a CONNECT: a new dict each time (http.client adds Host)."""
        if self.authorization is None:
            return {}
        return {"Proxy-Authorization": self.authorization}


class _DeadlineScope:
    """The context manager of `HttpClient.deadline`."""

    __slots__ = ("_deadline", "_token", "_variable")

    def __init__(
        self, variable: contextvars.ContextVar[Deadline | None], deadline: Deadline
    ) -> None:
        self._variable = variable
        self._deadline = deadline

    def __enter__(self) -> Deadline:
        self._token = self._variable.set(self._deadline)
        return self._deadline

    def __exit__(self, *exc: object) -> None:
        self._variable.reset(self._token)


class _DeclaredCall:
    """What `HttpClient.method` declares: checked once, rendered at each call."""

    def __init__(
        self,
        client: HttpClient,
        method: str,
        url: str,
        params: Mapping[str, Any],
        headers: Mapping[str, str],
        body: str | None,
        options: dict[str, Any],
    ) -> None:
        if not isinstance(url, str) or not url:
            raise ValueError("@http.method needs url=")
        if method == "EVENT" and params:
            raise ValueError(
                "@http.method(method='EVENT') takes no params: an asynchronous "
                "invocation has no client context"
            )
        self.client = client
        self.method = method
        self.url = _Template(url, "url", quote=method not in ("FUNC", "EVENT"))
        self.params = {
            name: (
                _Template(value, f"params[{name!r}]")
                if isinstance(value, str)
                else value
            )
            for name, value in params.items()
        }
        self.headers = {
            name: _Template(value, f"headers[{name!r}]")
            for name, value in headers.items()
        }
        self.body = body
        self.options = options

    def decorate(self, func: Callable[..., Any]) -> Callable[..., Any]:
        import inspect

        owner = f"@http.method of {getattr(func, '__qualname__', func)}"
        if inspect.iscoroutinefunction(func):
            raise TypeError(
                f"{owner}: HttpClient is synchronous: decorate a def function"
            )
        signature = inspect.signature(func)
        parameters = set(signature.parameters)
        templates = [self.url, *self.headers.values()]
        templates += [
            value for value in self.params.values() if isinstance(value, _Template)
        ]
        for template in templates:
            for name in template.arguments:
                if name not in parameters:
                    raise ValueError(
                        f"{owner}: {{{name}}} in its {template.where} is not a "
                        f"parameter of the function (UPPERCASE placeholders are "
                        f"environment variables)"
                    )
        if self.body is not None and self.body not in parameters:
            raise ValueError(
                f"{owner}: body={self.body!r} is not a parameter of the function"
            )
        wanted = [name for name in _RESPONSE_PARAMETERS if name in parameters]

        @functools.wraps(func)
        def call(*args: Any, **kwargs: Any) -> Any:
            bound = signature.bind_partial(*args, **kwargs)
            bound.apply_defaults()
            response, body, code = self._call(owner, bound.arguments)
            if not wanted:
                if isinstance(response, HttpResponse) and response.status >= 300:
                    raise HttpStatusError(response)
                if isinstance(response, InvokeResult):
                    response.raise_for_function_error()
                return response
            given = {"response": response, "response_body": body, "response_code": code}
            return func(*args, **kwargs, **{name: given[name] for name in wanted})

        return call

    def _call(self, owner: str, arguments: Mapping[str, Any]) -> tuple[Any, str, int]:
        """Make the declared call; (response, its text, its status)."""
        url = self.url.render(owner, arguments)
        params = {
            name: (
                value.value(owner, arguments) if isinstance(value, _Template) else value
            )
            for name, value in self.params.items()
        }
        payload = arguments.get(self.body) if self.body is not None else None
        if self.method in ("FUNC", "EVENT"):
            if self.method == "EVENT":
                result = invoke_async(url, payload, config=self.client.lambda_config)
                return result, json_dumps(result.metadata), result.status
            result = invoke_result(
                url,
                payload,
                {k: v for k, v in params.items() if v is not None} or None,
                config=self.client.lambda_config,
            )
            return result, result.text, result.status
        headers = {
            name: value.render(owner, arguments) for name, value in self.headers.items()
        }
        body: dict[str, Any] = {}
        if payload is not None:
            body = _declared_body(payload, owner)
        response = self.client.request(
            self.method, url, params=params, headers=headers, **body, **self.options
        )
        return response, response.text, response.status


class _Template:
    """A text with ``{placeholders}``: lowercase ones from arguments, UPPERCASE from env."""

    def __init__(self, text: str, where: str, *, quote: bool = False) -> None:
        import string

        self.where = where
        self.quote = quote
        try:
            self.parts = list(string.Formatter().parse(text))
        except ValueError as error:
            raise ValueError(f"@http.method: the {where} {text!r}: {error}") from None
        roots = []
        for _, field, _, _ in self.parts:
            if field is not None:
                root = _placeholder_root(field)
                if not root or root.isdigit():
                    raise ValueError(
                        f"@http.method: the {where} {text!r} has a placeholder "
                        f"without a name"
                    )
                roots.append(root)
        self.arguments = [root for root in roots if not root.isupper()]
        # One placeholder and nothing else: `value` keeps the argument's type.
        literal, field, spec, conversion = (
            self.parts[0] if self.parts else ("", None, "", None)
        )
        alone = len(self.parts) == 1 and not (literal or spec or conversion)
        self.whole = field if alone else None

    def render(self, owner: str, arguments: Mapping[str, Any]) -> str:
        """The text with every placeholder filled in."""
        import string

        formatter = string.Formatter()
        pieces = []
        for literal, field, spec, conversion in self.parts:
            pieces.append(literal)
            if field is None:
                continue
            value, from_environment = self._lookup(owner, field, arguments)
            if conversion:
                value = formatter.convert_field(value, conversion)
            text = formatter.format_field(value, spec or "")
            if self.quote and not from_environment:
                from urllib.parse import quote

                text = quote(text, safe="")
            pieces.append(text)
        return "".join(pieces)

    def value(self, owner: str, arguments: Mapping[str, Any]) -> Any:
        """The placeholder's own value when the text is one placeholder, else `render`."""
        if self.whole is not None and _placeholder_root(self.whole) in arguments:
            return self._lookup(owner, self.whole, arguments)[0]
        return self.render(owner, arguments)

    def _lookup(
        self, owner: str, field: str, arguments: Mapping[str, Any]
    ) -> tuple[Any, bool]:
        """The value of ``field``, and whether it came from the environment."""
        import string

        root = _placeholder_root(field)
        if root.isupper():
            if root not in os.environ:
                raise ValueError(
                    f"{owner}: the environment variable {root} is not set "
                    f"(placeholder {{{field}}} in its {self.where})"
                )
            scope: Mapping[str, Any] = os.environ
        else:
            scope = arguments
        try:
            return string.Formatter().get_field(field, (), scope)[0], root.isupper()
        except (AttributeError, KeyError, IndexError, TypeError) as error:
            raise ValueError(
                f"{owner}: cannot fill in {{{field}}} in its {self.where}: {error!r}"
            ) from None


def _placeholder_root(field: str) -> str:
    """The name a placeholder starts with: ``customer`` in ``{customer.email}``."""
    return field.partition(".")[0].partition("[")[0]


def _http_method(method: object) -> str:
    if not isinstance(method, str) or not method.isalpha():
        raise ValueError(f"not an HTTP method: {method!r}")
    return method.upper()


def _declared_method(method: object) -> str:
    verb = _http_method(method)
    if verb not in {*_IDEMPOTENT_METHODS, "POST", "PATCH", "FUNC", "EVENT"}:
        raise ValueError(
            f"@http.method: unknown method {method!r} (GET, HEAD, OPTIONS, POST, "
            f"PUT, PATCH, DELETE, TRACE, or FUNC and EVENT for Lambda)"
        )
    return verb


@functools.lru_cache(maxsize=256)  # a client calls the same URLs again and again
def _split_url(url: str) -> tuple[str, str, int, str]:
    """(scheme, host, port, path and query) of an absolute http(s) URL.

    Raises ``ValueError`` naming the URL (secrets masked) when it is not one.
    """
    from urllib.parse import urlsplit

    problem = None
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as error:
        problem = str(error)
    else:
        if parts.scheme not in ("http", "https"):
            problem = "it is not an http or https URL"
        elif not parts.hostname:
            problem = "it has no host"
        elif " " in url or not url.isprintable():
            problem = "it holds spaces or control characters (percent-encode them)"
        elif not (parts.path.isascii() and parts.query.isascii()):
            problem = (
                "its path or query holds non-ASCII characters (percent-encode them)"
            )
    if problem is not None:
        raise ValueError(f"malformed URL {_masked_url(url)!r}: {problem}")
    scheme, host = parts.scheme, parts.hostname
    assert host is not None
    target = parts.path or "/"
    if parts.query:
        target = f"{target}?{parts.query}"
    return scheme, host, port or (443 if scheme == "https" else 80), target


def _http_timeouts(timeout: object) -> tuple[float, float]:
    if isinstance(timeout, tuple) and len(timeout) == 2:
        connect = _check_timeout("connect timeout", timeout[0])
        read = _check_timeout("read timeout", timeout[1])
    elif isinstance(timeout, tuple):
        raise ValueError(f"timeout must be seconds or (connect, read), not {timeout!r}")
    else:
        connect = read = _check_timeout("timeout", timeout)
    if connect is None or read is None:
        raise ValueError(f"timeout must be seconds or (connect, read), not {timeout!r}")
    return connect, read


def _count(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name} must be a whole number >= 0, not {value!r}")
    return value


def _non_negative(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise ValueError(f"{name} must be a number >= 0, not {value!r}")
    return float(value)


def _checked_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """``headers`` as a dict, after refusing what would break the request's framing."""
    checked = {}
    for name, value in headers.items():
        if not isinstance(name, str) or not isinstance(value, str):
            raise TypeError(f"header names and values must be strings: {name!r}")
        if (
            not name
            or not name.isascii()
            or any(c in name for c in " \t\r\n:")
            or "\r" in value
            or "\n" in value
            or not value.isprintable()
            or not _latin1(value)
        ):
            shown = _MASK if _is_secret(name) else repr(value)
            raise ValueError(
                f"malformed header {name!r}: {shown} (one line of Latin-1 text)"
            )
        checked[name] = value
    return checked


def _latin1(text: str) -> bool:
    """Whether HTTP/1.1 can carry ``text`` in a header (http.client writes Latin-1)."""
    try:
        text.encode("latin-1")
    except UnicodeEncodeError:
        return False
    return True


def _request_body(json_value: Any, data: Any) -> tuple[bytes | None, str | None]:
    """(body, Content-Type) of `HttpClient.request`'s ``json`` or ``data``."""
    if json_value is not None:
        if data is not None:
            raise TypeError("give json= or data=, not both")
        try:
            return json_dumps(json_value).encode("utf-8"), "application/json"
        except (TypeError, ValueError) as error:
            raise TypeError(f"json body: {error}") from None
    if data is None or isinstance(data, bytes):
        return data, None
    if isinstance(data, bytearray | memoryview):
        return bytes(data), None
    if isinstance(data, str):
        return data.encode("utf-8"), None
    if isinstance(data, Mapping):
        from urllib.parse import urlencode

        return urlencode(data, doseq=True).encode("ascii"), (
            "application/x-www-form-urlencoded"
        )
    raise TypeError(
        f"data must be bytes, text or a mapping, not {type(data).__name__} "
        f"(json= sends other values as JSON)"
    )


def _declared_body(value: Any, owner: str) -> dict[str, Any]:
    """The `request` argument sending a declared body: json= or data=."""
    if isinstance(value, bytes | bytearray | memoryview | str):
        return {"data": value}
    dataclasses = sys.modules.get("dataclasses")
    is_dataclass = (
        dataclasses is not None
        and dataclasses.is_dataclass(value)
        and not isinstance(value, type)
    )
    if (
        isinstance(value, Mapping | list | tuple)
        or is_dataclass
        or callable(getattr(value, "model_dump", None))
        or callable(getattr(value, "dict", None))
    ):
        return {"json": value}
    raise TypeError(
        f"{owner}: cannot send a {type(value).__name__} as the body: give a dict, "
        f"a list, a dataclass, a model (model_dump() or dict()), bytes or text"
    )


def _retry_after(value: str | None) -> float | None:
    """The seconds a ``Retry-After`` header asks to wait (seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    from email.utils import parsedate_to_datetime

    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _gave_up(
    request: _HttpRequest,
    attempts: int,
    failure: _AttemptError | None,
    *,
    out_of_time: bool,
) -> HttpConnectionError:
    """The error raised when no answer came: the last failure as its cause."""
    url = _masked_url(request.url)
    timed_out = out_of_time or (
        failure is not None and isinstance(failure.error, TimeoutError)
    )
    if failure is None:
        message = f"{request.method} {url}: the deadline passed before it was sent"
    else:
        message = f"{request.method} {url}: {failure.reason}"
        message += f" (after {attempts} attempts)" if attempts > 1 else ""
        if out_of_time:
            message += ": no time left to retry before the deadline"
    kind = HttpTimeoutError if timed_out else HttpConnectionError
    error = kind(message, request.method, url, attempts)
    error.__cause__ = failure.error if failure is not None else None
    return error


def _decoded(content: bytes, encoding: str, request: _HttpRequest) -> bytes:
    import zlib

    coding = encoding.strip().lower()
    try:
        if coding in ("gzip", "x-gzip"):
            return zlib.decompress(content, 16 + zlib.MAX_WBITS)
        if coding == "deflate":
            try:
                return zlib.decompress(content)
            except zlib.error:  # raw deflate, as some servers send it
                return zlib.decompress(content, -zlib.MAX_WBITS)
    except zlib.error as error:
        raise HttpConnectionError(
            f"{request.method} {_masked_url(request.url)}: the {coding} body does "
            f"not decompress: {error}",
            request.method,
            _masked_url(request.url),
            1,
        ) from error
    return content  # identity, or a coding we did not ask for: as it came


@functools.cache
def _ssl_context(verify: bool | str) -> Any:
    import ssl

    if verify is True:
        return ssl.create_default_context()
    if verify is False:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    return ssl.create_default_context(cafile=verify)


def _dropped(sock: Any) -> bool:
    """True when a kept connection's socket was closed (or has unread bytes)."""
    if sock is None:
        return True
    import select

    try:
        poller = select.poll()
        poller.register(sock, select.POLLIN)
        return bool(poller.poll(0))
    except (OSError, ValueError):
        return True


def _connect_failure(error: Exception, request: _HttpRequest) -> _AttemptError:
    """What a connection that could not be opened allows (it carried nothing)."""
    import ssl

    proxy = request.proxy
    if isinstance(error, ssl.SSLCertVerificationError):
        # A certificate that does not verify will not verify on a retry.
        return _AttemptError(error, sent=False, retryable=False)
    if proxy is None:
        return _AttemptError(error, sent=False)
    # http.client's words for a CONNECT answered with another status than 200.
    words = str(error).removeprefix("Tunnel connection failed: ")
    status, _, phrase = words.partition(" ")
    if type(error) is OSError and words != str(error) and status.isdigit():
        _, host, port = request.origin
        refusal = int(status)
        return _AttemptError(
            error,
            sent=False,
            # 407 (credentials) and 403 (not allowed) will be refused again.
            retryable=refusal >= 500 or refusal in (408, 429),
            reason=f"the proxy {proxy.shown} refused the tunnel to {host}:{port}: "
            f"{refusal} {phrase}".rstrip(),
        )
    failure = _AttemptError(error, sent=False)
    failure.reason += f" (proxy {proxy.shown})"
    return failure


def _proxy_settings(
    proxies: object, trust_env: object
) -> tuple[dict[str, _Proxy], tuple[tuple[str, int | None], ...]]:
    """`HttpClient`'s proxy per target scheme, and the NO_PROXY entries bypassing them."""
    if not isinstance(trust_env, bool):
        raise TypeError(f"trust_env must be True or False, not {trust_env!r}")
    settings: dict[str, tuple[str, str]] = {}  # scheme -> (where it is set, URL)
    if proxies is None:
        if not trust_env:
            return {}, ()
        for scheme in ("http", "https"):
            setting = _environment_setting(f"{scheme}_proxy")
            if not setting[1]:
                setting = _environment_setting("all_proxy")
            if setting[1]:
                settings[scheme] = setting
        no_proxy = _environment_setting("no_proxy")
    elif proxies is False:
        return {}, ()
    elif isinstance(proxies, Mapping):
        for key, value in proxies.items():
            if key not in ("http", "https", "no_proxy"):
                raise ValueError(
                    f"proxies: unknown key {key!r} (the keys are 'http', 'https' "
                    f"and 'no_proxy')"
                )
            if value is not None and not isinstance(value, str):
                raise TypeError(
                    f"proxies[{key!r}] must be text, not {type(value).__name__}"
                )
            if value and key != "no_proxy":
                settings[key] = (f"proxies[{key!r}]", value)
        no_proxy = ("proxies['no_proxy']", proxies.get("no_proxy") or "")
    else:
        raise TypeError(
            f"proxies must be a mapping ({{'https': 'http://proxy:3128'}}), None "
            f"or False, not {type(proxies).__name__}"
        )
    chosen = {
        scheme: _parsed_proxy(url, where) for scheme, (where, url) in settings.items()
    }
    if not chosen:
        return {}, ()  # NO_PROXY has nothing to bypass
    bypassing = _no_proxy_entries(*no_proxy)
    return ({}, ()) if bypassing is None else (chosen, bypassing)


def _environment_setting(name: str) -> tuple[str, str]:
    """(variable, value) of ``name`` in lower case, else UPPER case (empty: unset).

    The lower-case variable wins, as with urllib and requests.
    """
    for variable in (name, name.upper()):
        value = os.environ.get(variable)
        if value is not None:
            return variable, value.strip()
    return name.upper(), ""


def _parsed_proxy(url: str, where: str) -> _Proxy:
    """The proxy at ``url``; ``ValueError`` naming ``where`` and the URL, masked.

    The user information is split off by hand, at the last ``@``, before
    anything parses the URL: a password holding ``/``, ``?`` or ``#`` (not
    percent-encoded) still works, and no parser's message can quote it.
    """
    from urllib.parse import unquote_to_bytes

    if "://" not in url:
        url = f"http://{url}"  # host:port, as curl and requests read it
    scheme, _, rest = url.partition("://")
    scheme = scheme.lower()
    userinfo, at, address = rest.rpartition("@")
    shown = f"{scheme}://{'***@' if at else ''}{address}"
    problem = None
    if scheme == "https":
        problem = (
            "TLS to the proxy (https://) is not supported: give its http:// URL "
            "(https targets stay TLS end to end, through a tunnel)"
        )
    elif scheme != "http":
        problem = f"{scheme}:// proxies are not supported: give an http:// URL"
    else:
        try:
            _, host, port, target = _split_url(f"http://{address}")
        except ValueError as error:  # about the address alone: no secret in it
            problem = str(error).partition(": ")[2]
        else:
            if target != "/" or "#" in address:
                problem = "a proxy URL is http://[user:password@]host[:port]"
    if problem is not None:
        raise ValueError(
            f"{where}: unusable proxy URL {_masked_url(shown)!r}: {problem}"
        )
    authorization = None
    if at:
        from base64 import b64encode

        user, _, password = userinfo.partition(":")
        pair = unquote_to_bytes(user) + b":" + unquote_to_bytes(password)
        authorization = f"Basic {b64encode(pair).decode('ascii')}"
    authority = f"[{host}]" if ":" in host else host
    return _Proxy(
        host,
        port,
        authorization,
        f"http://{'***@' if at else ''}{authority}:{port}",
    )


def _no_proxy_entries(
    where: str, text: str
) -> tuple[tuple[str, int | None], ...] | None:
    """NO_PROXY's entries: (host, domain or address range; port or None).

    None for ``*``: no proxy at all. An entry that is none of these is a
    ``ValueError`` when given to the client (``proxies['no_proxy']``); in
    the environment's variable, which other tools read too, it is skipped
    with a warning, as requests and urllib skip it.
    """
    entries = []
    for entry in text.replace(",", " ").split():
        if entry == "*":
            return None
        host, port = entry, None
        if entry.startswith("["):  # [IPv6 address] or [IPv6 address]:port
            host, closed, rest = entry[1:].partition("]")
            port = rest[1:] if closed and rest.startswith(":") else None
            usable = bool(closed) and (port is not None or not rest)
        else:
            if entry.count(":") == 1:  # name:port or IPv4:port; more: IPv6
                host, _, port = entry.partition(":")
            usable = True
        host = host.lower().removeprefix("*.").strip(".")
        usable = (
            usable
            and bool(host)
            and (port is None or (port.isascii() and port.isdigit()))
            and (port is None or 0 < int(port) < 65536)
        )
        if usable and "/" in host:  # an address range: checked now, not at a request
            import ipaddress

            try:
                ipaddress.ip_network(host, strict=False)
            except ValueError:
                usable = False
        if not usable:
            problem = (
                f"{entry!r} is not a host name, a domain (.example.com), an IP "
                f"address or range (10.0.0.0/8), with an optional :port, nor *"
            )
            if where.startswith("proxies"):
                raise ValueError(f"{where}: {problem}")
            get_logger("fleece_runtime.http").warning(
                "NO_PROXY entry ignored", variable=where, problem=problem
            )
            continue
        entries.append((host, None if port is None else int(port)))
    return tuple(entries)


def _bypasses_proxy(
    entries: tuple[tuple[str, int | None], ...], host: str, port: int
) -> bool:
    """Whether NO_PROXY's ``entries`` send the requests to ``host:port`` direct."""
    host = host.rstrip(".")  # the fully qualified api.example.com. too
    address = _ip_address(host)
    for name, only_port in entries:
        if only_port is not None and only_port != port:
            continue
        if address is None:
            matched = host == name or host.endswith(f".{name}")
        else:
            import ipaddress

            try:
                matched = address in ipaddress.ip_network(name, strict=False)
            except ValueError:  # a name: an address matches addresses only
                matched = False
        if matched:
            return True
    return False


def _ip_address(host: str) -> Any:
    """``host`` as an ``ipaddress`` address, or None when it is a name."""
    if not (host[-1:].isdigit() or ":" in host):
        return None
    import ipaddress

    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def _ascii_host(host: str) -> str:
    """``host`` as it goes on the wire: an internationalised name in IDNA (punycode)."""
    if host.isascii():
        return host
    try:
        return host.encode("idna").decode("ascii")
    except UnicodeError:
        raise ValueError(f"{host!r} is not a valid host name") from None


@functools.cache
def _region_pattern() -> Any:
    import re

    return re.compile(r"[a-z]{2}(-gov|-iso[a-z]?)?-[a-z]+-[0-9]+")


def _is_region(label: str) -> bool:
    return _region_pattern().fullmatch(label) is not None


def _is_secret(name: str) -> bool:
    lowered = name.lower()
    return lowered in _SECRET_NAMES or any(word in lowered for word in _SECRET_WORDS)


def _masked_headers(headers: Mapping[str, str]) -> dict[str, str]:
    return {
        name: _MASK if _is_secret(name) else value for name, value in headers.items()
    }


def _masked_url(url: str) -> str:
    """``url`` for a log line: the password and secret query values masked."""
    from urllib.parse import unquote_plus, urlsplit, urlunsplit

    try:
        scheme, netloc, path, query, _ = urlsplit(url)
    except ValueError:
        return "<unreadable URL>"
    if "@" in netloc:
        user, _, host = netloc.rpartition("@")
        netloc = f"{user.partition(':')[0]}:{_MASK}@{host}" if ":" in user else netloc
    if query:
        pairs = []
        for pair in query.split("&"):
            name, equals, _ = pair.partition("=")
            secret = equals and _is_secret(unquote_plus(name))
            pairs.append(f"{name}={_MASK}" if secret else pair)
        query = "&".join(pairs)
    return urlunsplit((scheme, netloc, path, query, ""))


# ---------------------------------------------------------------------------
# Lambda invoke: calling other functions, synchronously or not
# ---------------------------------------------------------------------------

_CLIENT_CONTEXT_LIMIT = 3583  # bytes of base64, as Lambda counts them


def invoke(
    function: str,
    payload: Any = None,
    client_context: Mapping[str, Any] | None = None,
    *,
    config: Any = None,
) -> Any:
    """Invoke a Lambda function and wait: its result, decoded from JSON.

    ``function`` is a name (``orders``, ``orders:live`` with an alias or
    version), a partial ARN (``123456789012:function:orders``) or a full
    ARN (its region is used); UPPERCASE placeholders are filled in from
    environment variables (``{STAGE}-orders``). ``payload`` is sent as JSON
    through `JsonEncoder` (dicts, lists, dataclasses, models...); text and
    bytes are sent as they are, and must be JSON. ``client_context`` (a
    dict) reaches the function as ``context.client_context.custom``.

    When the function raised (``FunctionError`` in Lambda's answer),
    `FunctionError` is raised here with the remote error's type, message
    and stack. The payload is read once. ``config``: a botocore ``Config``
    merged over the defaults: 10 s to connect, 900 s to read (the longest a
    function runs: a read timeout would be retried, and invoke the function
    again), adaptive retries, 10 attempts. Pass the same ``Config`` object
    each time: a client is kept per ``Config`` and region. A malformed
    function name, a client context over Lambda's 3583 bytes or a payload
    that cannot be written raise before anything is sent.
    """
    result = invoke_result(function, payload, client_context, config=config)
    return result.raise_for_function_error().payload


def invoke_async(
    function: str, payload: Any = None, *, config: Any = None
) -> InvokeResult:
    """Queue an invocation of a Lambda function (``InvocationType=Event``).

    Lambda answers 202 once the event is queued; the function runs later,
    with Lambda's own retries. ``function``, ``payload`` and ``config`` are
    as for `invoke`. Returns the `InvokeResult` (``status`` 202,
    ``request_id``).
    """
    return invoke_result(function, payload, invocation_type="Event", config=config)


def invoke_result(
    function: str,
    payload: Any = None,
    client_context: Mapping[str, Any] | None = None,
    *,
    invocation_type: str = "RequestResponse",
    config: Any = None,
) -> InvokeResult:
    """Invoke a Lambda function and return Lambda's whole answer, errors included.

    As `invoke` (``invocation_type`` ``"RequestResponse"``) or `invoke_async`
    (``"Event"``), or ``"DryRun"``, but a function error does not raise:
    it is in ``function_error`` and the payload (see
    `InvokeResult.raise_for_function_error`).
    """
    if invocation_type not in ("RequestResponse", "Event", "DryRun"):
        raise ValueError(
            f"invocation_type must be RequestResponse, Event or DryRun, "
            f"not {invocation_type!r}"
        )
    name = _function_name(function)
    arguments: dict[str, Any] = {
        "FunctionName": name,
        "InvocationType": invocation_type,
    }
    if payload is not None:
        arguments["Payload"] = _invoke_payload(payload, name)
    if client_context is not None:
        if invocation_type != "RequestResponse":
            raise ValueError("a client context goes with synchronous invocations only")
        arguments["ClientContext"] = _client_context(client_context, name)
    region = name.split(":")[3] if name.startswith("arn:") else None
    answer = _lambda_client(region, _checked_config(config)).invoke(**arguments)
    return InvokeResult(name, answer)


class InvokeResult:
    """Lambda's answer to an invocation, its payload read once.

    ``status`` (200, 202 for ``Event``, 204 for ``DryRun``), ``payload``
    (the function's result decoded from JSON; None when empty), ``text``
    (the same, undecoded), ``function_error`` (``"Unhandled"`` when the
    function raised, else None), ``executed_version``, ``request_id``,
    ``metadata`` (botocore's ``ResponseMetadata``) and ``function`` (the
    name invoked).
    """

    __slots__ = (
        "_decoded",
        "_payload",
        "executed_version",
        "function",
        "function_error",
        "metadata",
        "request_id",
        "status",
        "text",
    )

    def __init__(self, function: str, answer: Mapping[str, Any]) -> None:
        stream = answer.get("Payload")
        raw = stream.read() if stream is not None else b""
        self.function = function
        self.status = int(answer.get("StatusCode", 0))
        self.text = raw.decode("utf-8", errors="replace")
        self.function_error: str | None = answer.get("FunctionError")
        self.executed_version: str | None = answer.get("ExecutedVersion")
        self.metadata: dict[str, Any] = dict(answer.get("ResponseMetadata") or {})
        self.request_id: str | None = self.metadata.get("RequestId")
        self._payload: Any = None
        self._decoded = False

    def __repr__(self) -> str:
        error = f" {self.function_error}" if self.function_error else ""
        return f"<InvokeResult {self.status}{error} {self.function}>"

    @property
    def payload(self) -> Any:
        """The payload decoded from JSON (None when empty; the text if not JSON)."""
        if not self._decoded:
            try:
                self._payload = json.loads(self.text) if self.text else None
            except ValueError:
                self._payload = self.text
            self._decoded = True
        return self._payload

    def raise_for_function_error(self) -> Self:
        """Raise `FunctionError` when the function raised; else return self."""
        if self.function_error:
            raise FunctionError(self)
        return self


class FunctionError(Exception):
    """An invoked Lambda function raised: its error, as Lambda reports it.

    ``error_type`` (``"ValueError"``), ``error_message``, ``stack_trace``
    (the remote stack's lines), ``kind`` (``"Unhandled"``), ``function``
    and ``result`` (the `InvokeResult`).
    """

    def __init__(self, result: InvokeResult) -> None:
        details = result.payload if isinstance(result.payload, Mapping) else {}
        self.result = result
        self.function = result.function
        self.kind = result.function_error
        self.error_type: str | None = details.get("errorType")
        self.error_message: str = str(details.get("errorMessage", result.text))
        stack = details.get("stackTrace") or []
        self.stack_trace: list[str] = [str(line) for line in stack]
        what = (
            f"{self.error_type}: {self.error_message}"
            if self.error_type
            else self.error_message
        )
        super().__init__(f"{self.function} failed ({self.kind}): {what}")


def _function_name(template: str) -> str:
    """The function name after its UPPERCASE placeholders; refused when malformed."""
    if not isinstance(template, str):
        raise TypeError(f"the function must be a name or an ARN, not {template!r}")
    name = template
    if "{" in template:
        try:
            name = template.format_map(_FunctionNameVariables())
        except (IndexError, ValueError) as error:
            raise ValueError(f"the function name {template!r}: {error}") from None
    if _function_name_pattern().fullmatch(name) is None:
        raise ValueError(
            f"not a Lambda function name or ARN: {name!r} (a name, name:alias, "
            f"123456789012:function:name or arn:aws:lambda:region:account:function:name)"
        )
    return name


class _FunctionNameVariables(dict[str, str]):
    """The environment variables a function name's ``{PLACEHOLDERS}`` read."""

    def __missing__(self, name: str) -> str:
        if not name.isupper():
            raise ValueError(
                f"{{{name}}} is not an environment variable: a function name takes "
                f"UPPERCASE placeholders only"
            )
        value = os.environ.get(name)
        if value is None:
            raise ValueError(f"the environment variable {name} is not set")
        return value


@functools.cache
def _function_name_pattern() -> Any:
    import re

    # Lambda's own pattern for FunctionName.
    return re.compile(
        r"(arn:(aws[a-zA-Z-]*)?:lambda:)?([a-z]{2}(-gov|-iso[a-z]?)?-[a-z]+-\d{1}:)?"
        r"(\d{12}:)?(function:)?([a-zA-Z0-9-_.]+)(:(\$LATEST|[a-zA-Z0-9-_]+))?"
    )


def _invoke_payload(payload: Any, function: str) -> bytes:
    if isinstance(payload, bytes):
        return payload
    if isinstance(payload, str):
        return payload.encode("utf-8")
    try:
        return json_dumps(payload).encode("utf-8")
    except (TypeError, ValueError) as error:
        raise TypeError(
            f"the payload for {function} cannot be sent as JSON: {error}"
        ) from None


def _client_context(custom: Mapping[str, Any], function: str) -> str:
    import base64

    if not isinstance(custom, Mapping):
        raise TypeError(f"client_context must be a dict, not {type(custom).__name__}")
    encoded = base64.b64encode(json_dumps({"custom": custom}).encode("utf-8")).decode()
    if len(encoded) > _CLIENT_CONTEXT_LIMIT:
        raise ValueError(
            f"the client context for {function} is {len(encoded)} bytes in base64; "
            f"Lambda takes at most {_CLIENT_CONTEXT_LIMIT}"
        )
    return encoded


def _checked_config(config: Any) -> Any:
    if config is None:
        return None
    try:
        from botocore.config import Config
    except ImportError as error:
        raise _missing("boto3", error) from None
    if not isinstance(config, Config):
        raise TypeError(f"config must be a botocore.config.Config, not {config!r}")
    return config


@functools.lru_cache(maxsize=16)
def _lambda_client(region: str | None, config: Any) -> Any:
    """The Lambda client of a region and a Config, kept across invocations."""
    try:
        from botocore.config import Config
        from botocore.exceptions import NoRegionError
    except ImportError as error:
        raise _missing("boto3", error) from None
    merged = Config(
        connect_timeout=10,
        read_timeout=900,
        retries={"mode": "adaptive", "total_max_attempts": 10},
    )
    if config is not None:
        merged = merged.merge(config)
    try:
        return boto3.client("lambda", region_name=region, config=merged)
    except NoRegionError:
        raise ValueError(
            "no AWS region to invoke a Lambda function in: set AWS_REGION or "
            "give the function's full ARN"
        ) from None


# ---------------------------------------------------------------------------
# Resilience: retrying any call, and circuit breakers
# ---------------------------------------------------------------------------

_CLOSED, _OPEN, _HALF_OPEN = "closed", "open", "half_open"
_CIRCUIT_SAVE_TRIES = 5
_CIRCUIT_TTL = 86400  # seconds a circuit's item outlives its last change


def retry(
    on: type[BaseException] | tuple[type[BaseException], ...] = Exception,
    attempts: int = 3,
    backoff: float = 0.1,
    max_delay: float = 5.0,
    deadline: float | None = None,
) -> RetryPolicy:
    """Retry a call that raises ``on``: a decorator, a loop of attempts, or `RetryPolicy.call`.

    ::

        @retry(on=ConnectionError, attempts=5)
        def fetch(): ...

        for attempt in retry(on=TimeoutError):   # a block of code
            with attempt:
                sync_orders()

        retry(on=OSError).call(client.send, message)

    At most ``attempts`` calls in all. After failed attempt ``n`` (from 1)
    it waits a random time up to ``min(max_delay, backoff * 2**(n-1))``
    seconds (exponential backoff with full jitter), logging the attempt, the
    wait and the reason (logger ``fleece_runtime.retry``, WARNING). It gives
    up, raising the last error, when the attempts are spent or when the wait
    would end past the deadline: ``deadline`` seconds after the first
    attempt, or the current invocation's (its remaining time minus 0.5 s),
    whichever comes first. Errors that are not ``on`` are raised at once.
    ``async def`` functions are retried with ``asyncio.sleep``; so are
    ``async for attempt in retry(...)`` blocks.
    """
    return RetryPolicy(on, attempts, backoff, max_delay, deadline)


class RetryPolicy:
    """How to retry, as `retry` returns it: a decorator, iterable, or `call`."""

    __slots__ = ("attempts", "backoff", "deadline", "max_delay", "on")

    def __init__(
        self,
        on: type[BaseException] | tuple[type[BaseException], ...],
        attempts: int,
        backoff: float,
        max_delay: float,
        deadline: float | None,
    ) -> None:
        self.on = _exception_classes("on", on)
        self.attempts = _whole("attempts", attempts)
        self.backoff = _number("backoff", backoff, positive=False)
        self.max_delay = _number("max_delay", max_delay, positive=False)
        self.deadline = (
            None if deadline is None else _number("deadline", deadline, positive=True)
        )

    def __repr__(self) -> str:
        names = ", ".join(c.__name__ for c in self.on)
        return f"<RetryPolicy on=({names}) attempts={self.attempts}>"

    def __call__(self, func: Callable[_P, _R]) -> Callable[_P, _R]:
        """Decorate ``func``: each call of it is retried (``async def`` too)."""
        import inspect

        name = _call_name(func)
        if inspect.iscoroutinefunction(func):
            run: Any = func

            @functools.wraps(func)
            async def retried_async(*args: Any, **kwargs: Any) -> Any:
                import asyncio

                retries = _Retries(self, name)
                while True:
                    try:
                        return await run(*args, **kwargs)
                    except BaseException as error:
                        wait = retries.wait_after(error)
                        if wait is None:
                            raise
                    await asyncio.sleep(wait)

            wrapped: Any = retried_async
            retried_coroutine: Callable[_P, _R] = wrapped
            return retried_coroutine

        @functools.wraps(func)
        def retried(*args: _P.args, **kwargs: _P.kwargs) -> _R:
            return self.call(func, *args, **kwargs)

        return retried

    def call(self, func: Callable[..., _R], /, *args: Any, **kwargs: Any) -> _R:
        """``func(*args, **kwargs)``, retried."""
        retries = _Retries(self, _call_name(func))
        while True:
            try:
                return func(*args, **kwargs)
            except BaseException as error:
                wait = retries.wait_after(error)
                if wait is None:
                    raise
            time.sleep(wait)

    def __iter__(self) -> Iterator[RetryAttempt]:
        """Attempts at a block: ``for attempt in policy: with attempt: ...``."""
        retries = _Retries(self, "block")
        while True:
            attempt = RetryAttempt(retries)
            yield attempt
            if attempt.wait is None:
                return
            time.sleep(attempt.wait)

    async def __aiter__(self) -> AsyncIterator[RetryAttempt]:
        """Attempts at a block of a coroutine: ``async for attempt in policy``."""
        import asyncio

        retries = _Retries(self, "block")
        while True:
            attempt = RetryAttempt(retries)
            yield attempt
            if attempt.wait is None:
                return
            await asyncio.sleep(attempt.wait)


class RetryAttempt:
    """One attempt at a block (see `retry`): ``with attempt:`` around the block.

    An error to retry ends the block quietly and the loop tries again after
    the wait; the last one, or any other error, is raised. A block that ends
    without an error ends the loop.
    """

    __slots__ = ("_retries", "wait")

    def __init__(self, retries: _Retries) -> None:
        self._retries = retries
        self.wait: float | None = None

    @property
    def number(self) -> int:
        """The attempt's number, from 1."""
        return self._retries.attempt + 1

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> bool:
        if error is None:
            return False
        self.wait = self._retries.wait_after(error)
        return self.wait is not None


class _Retries:
    """The state of one retried call: attempts made, and the deadline."""

    __slots__ = ("attempt", "deadline", "name", "policy")

    def __init__(self, policy: RetryPolicy, name: str) -> None:
        self.policy = policy
        self.name = name
        self.attempt = 0
        self.deadline = current_deadline(policy.deadline)

    def wait_after(self, error: BaseException) -> float | None:
        """The wait before the next attempt, or None to raise ``error``."""
        import random

        self.attempt += 1
        policy = self.policy
        if not isinstance(error, policy.on) or self.attempt >= policy.attempts:
            return None
        cap = min(policy.max_delay, policy.backoff * 2.0 ** (self.attempt - 1))
        wait = random.random() * cap
        if self.deadline is not None and wait >= self.deadline.remaining():
            return None
        get_logger("fleece_runtime.retry").warning(
            "Retrying call",
            function=self.name,
            attempt=self.attempt,
            wait=round(wait, 3),
            reason=f"{type(error).__name__}: {error}"[:300],
        )
        return wait


class CircuitBreaker:
    """Stops calling a dependency that keeps failing, and tries it again later.

    ::

        payments = CircuitBreaker("payments", failure_threshold=5,
                                  window_seconds=60, reset_timeout=30,
                                  expected=(HttpConnectionError, HttpStatusError))

        @payments
        def charge(order): ...

        with payments:                      # or as a block
            charge(order)

        payments.call(charge, order)        # or a call

    - **Closed** (the start): calls go through. A call that raises one of
      ``expected`` is a failure; ``failure_threshold`` failures within
      ``window_seconds`` open the circuit.
    - **Open**: calls raise `CircuitOpenError` without calling, for
      ``reset_timeout`` seconds.
    - **Half-open**: after that, exactly one trial call goes through, and
      callers meanwhile are refused. Its success closes the circuit (the
      failures are forgotten), its failure opens it again. A trial that has
      not reported after another ``reset_timeout`` (its process was stopped)
      is presumed lost, and the next caller becomes the trial.

    Errors that are not ``expected`` (a bug, bad input) are raised and count
    as successes: the dependency answered. Each change of state is logged
    (logger ``fleece_runtime.circuit``).

    ``store`` keeps the state: a `MemoryCircuitStore` of this process by
    default, or a `DynamoDBCircuitStore` that every instance of the
    function shares. A store that fails never fails the call: the call goes
    through as if the circuit were closed, and the failure is logged.
    ``clock`` gives the time in seconds since the epoch (``time.time``; a
    shared store needs wall-clock time); tests pass their own.
    """

    def __init__(
        self,
        name: str,
        failure_threshold: int = 5,
        window_seconds: float = 60.0,
        reset_timeout: float = 30.0,
        expected: type[BaseException] | tuple[type[BaseException], ...] = Exception,
        *,
        store: CircuitStore | None = None,
        clock: Callable[[], float] | None = None,
    ) -> None:
        if not isinstance(name, str) or not name:
            raise ValueError(f"name must be a non-empty string, not {name!r}")
        self.name = name
        self.failure_threshold = _whole("failure_threshold", failure_threshold)
        self.window_seconds = _number("window_seconds", window_seconds, positive=True)
        self.reset_timeout = _number("reset_timeout", reset_timeout, positive=True)
        self.expected = _exception_classes("expected", expected)
        self.store = MemoryCircuitStore() if store is None else store
        self.clock = clock or time.time
        self._permits: contextvars.ContextVar[tuple[_Permit, ...]] = (
            contextvars.ContextVar(f"fleece_circuit_{name}", default=())
        )

    def __repr__(self) -> str:
        return f"<CircuitBreaker {self.name!r}>"

    @property
    def state(self) -> str:
        """``"closed"``, ``"open"`` or ``"half_open"``, as the store holds it now."""
        try:
            current = self.store.load(self.name)
        except Exception as error:  # noqa: BLE001 (a store never fails a caller)
            self._store_failed("load", error)
            return _CLOSED
        return _CLOSED if current is None else current.state

    def call(self, func: Callable[..., _R], /, *args: Any, **kwargs: Any) -> _R:
        """``func(*args, **kwargs)`` through the circuit; `CircuitOpenError` when open."""
        permit = self._enter()
        try:
            result = func(*args, **kwargs)
        except BaseException as error:
            self._exit(permit, error)
            raise
        self._exit(permit, None)
        return result

    def __call__(self, func: Callable[_P, _R]) -> Callable[_P, _R]:
        """Decorate ``func``: each call goes through the circuit (``async def`` too)."""
        import inspect

        if inspect.iscoroutinefunction(func):
            run: Any = func

            @functools.wraps(func)
            async def guarded_async(*args: Any, **kwargs: Any) -> Any:
                permit = self._enter()
                try:
                    result = await run(*args, **kwargs)
                except BaseException as error:
                    self._exit(permit, error)
                    raise
                self._exit(permit, None)
                return result

            wrapped: Any = guarded_async
            guarded_coroutine: Callable[_P, _R] = wrapped
            return guarded_coroutine

        @functools.wraps(func)
        def guarded(*args: _P.args, **kwargs: _P.kwargs) -> _R:
            return self.call(func, *args, **kwargs)

        return guarded

    def __enter__(self) -> Self:
        self._permits.set((*self._permits.get(), self._enter()))
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        *outer, permit = self._permits.get()
        self._permits.set(tuple(outer))
        self._exit(permit, error)

    async def __aenter__(self) -> Self:
        return self.__enter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.__exit__(exc_type, error, traceback)

    def _enter(self) -> _Permit:
        """Let a call through (as a trial, when half-open), or raise `CircuitOpenError`."""
        now = self.clock()
        try:
            current = self.store.load(self.name) or CircuitState()
        except Exception as error:  # noqa: BLE001 (a store never fails a caller)
            self._store_failed("load", error)
            return _Permit(None)
        if current.state == _CLOSED:
            return _Permit(current)
        since = (
            current.trial_started_at
            if current.state == _HALF_OPEN
            else current.opened_at
        )
        retry_at = (since or 0.0) + self.reset_timeout
        if now < retry_at:
            raise CircuitOpenError(self.name, current.state, retry_at - now)
        trial = CircuitState(
            _HALF_OPEN, current.failures, current.opened_at, now, current.version + 1
        )
        try:
            won = self.store.save(self.name, trial, current.version)
        except Exception as error:  # noqa: BLE001
            self._store_failed("save", error)
            return _Permit(None)
        if not won:  # another caller's trial began first
            raise CircuitOpenError(self.name, _HALF_OPEN, self.reset_timeout)
        self._log("Circuit half-open: trial call", logging.INFO, trial)
        return _Permit(trial)

    def _exit(self, permit: _Permit, error: BaseException | None) -> None:
        """Record a call's outcome: count a failure, end a trial."""
        failed = error is not None and isinstance(error, self.expected)
        entered = permit.state
        if entered is None or (entered.state == _CLOSED and not failed):
            return  # the store failed when it began, or nothing changes
        now = self.clock()
        try:
            if entered.state == _HALF_OPEN:
                self._end_trial(entered, failed, now)
            else:
                self._count_failure(now)
        except Exception as store_error:  # noqa: BLE001
            self._store_failed("save", store_error)

    def _end_trial(self, trial: CircuitState, failed: bool, now: float) -> None:
        if failed:
            after = CircuitState(_OPEN, (), now, None, trial.version + 1)
        else:
            after = CircuitState(_CLOSED, (), None, None, trial.version + 1)
        # A trial presumed lost meanwhile was taken over: its successor decides.
        if self.store.save(self.name, after, trial.version):
            if failed:
                self._log(
                    "Circuit re-opened: the trial call failed", logging.WARNING, after
                )
            else:
                self._log(
                    "Circuit closed: the trial call succeeded", logging.INFO, after
                )

    def _count_failure(self, now: float) -> None:
        for _ in range(_CIRCUIT_SAVE_TRIES):
            current = self.store.load(self.name) or CircuitState()
            if current.state != _CLOSED:
                return  # opened meanwhile: this failure adds nothing
            recent = [t for t in current.failures if t > now - self.window_seconds]
            failures = (*recent, now)[-self.failure_threshold :]
            if len(failures) >= self.failure_threshold:
                after = CircuitState(_OPEN, failures, now, None, current.version + 1)
            else:
                after = CircuitState(_CLOSED, failures, None, None, current.version + 1)
            if self.store.save(self.name, after, current.version):
                if after.state == _OPEN:
                    self._log("Circuit opened", logging.WARNING, after)
                return
        get_logger("fleece_runtime.circuit").warning(
            "Circuit failure not recorded: the store kept changing",
            circuit=self.name,
        )

    def _log(self, event: str, level: int, state: CircuitState) -> None:
        get_logger("fleece_runtime.circuit").log(
            level,
            event,
            circuit=self.name,
            state=state.state,
            failures=len(state.failures),
            reset_timeout=self.reset_timeout,
        )

    def _store_failed(self, operation: str, error: BaseException) -> None:
        get_logger("fleece_runtime.circuit").warning(
            "Circuit store failed: the call goes through",
            circuit=self.name,
            operation=operation,
            error=f"{type(error).__name__}: {error}"[:300],
        )


class CircuitOpenError(Exception):
    """A call refused by an open (or half-open) `CircuitBreaker`; nothing was called.

    ``circuit`` (its name), ``state`` and ``retry_after``: seconds until a
    trial call may go through.
    """

    def __init__(self, circuit: str, state: str, retry_after: float) -> None:
        self.circuit = circuit
        self.state = state
        self.retry_after = retry_after
        why = "a trial call is in progress" if state == _HALF_OPEN else "it is open"
        super().__init__(
            f"circuit {circuit!r} refused the call: {why} "
            f"(next trial in {retry_after:.1f} s at most)"
        )


class CircuitState:
    """A circuit's state as a store keeps it (never changed: a new one replaces it).

    ``state`` (``"closed"``, ``"open"``, ``"half_open"``), ``failures``
    (times of the recent failures, oldest first), ``opened_at``,
    ``trial_started_at`` (seconds since the epoch, or None) and
    ``version``: 0 for a circuit never saved, one more at each save.
    """

    __slots__ = ("failures", "opened_at", "state", "trial_started_at", "version")

    def __init__(
        self,
        state: str = _CLOSED,
        failures: tuple[float, ...] = (),
        opened_at: float | None = None,
        trial_started_at: float | None = None,
        version: int = 0,
    ) -> None:
        if state not in (_CLOSED, _OPEN, _HALF_OPEN):
            raise ValueError(f"state must be closed, open or half_open, not {state!r}")
        self.state = state
        self.failures = tuple(failures)
        self.opened_at = opened_at
        self.trial_started_at = trial_started_at
        self.version = version

    def __repr__(self) -> str:
        return (
            f"CircuitState({self.state!r}, failures={len(self.failures)}, "
            f"version={self.version})"
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, CircuitState):
            return NotImplemented
        return all(getattr(self, n) == getattr(other, n) for n in self.__slots__)

    __hash__ = None  # type: ignore[assignment]


class CircuitStore:
    """Where circuit breakers keep their state: the protocol a store implements.

    A store holds one `CircuitState` per circuit name. `save` is a
    compare-and-set: it writes only when the stored version is still
    ``expected_version`` (0: nothing stored yet), so that concurrent
    callers, in threads or in other instances of the function, never
    overwrite each other's changes. Subclass it, or give any object with
    these two methods.
    """

    def load(self, name: str) -> CircuitState | None:
        """The state of circuit ``name``, or None when none is stored."""
        raise NotImplementedError

    def save(self, name: str, state: CircuitState, expected_version: int) -> bool:
        """Store ``state`` if the stored version is ``expected_version``; whether it did."""
        raise NotImplementedError


class MemoryCircuitStore(CircuitStore):
    """Circuit states in this process's memory (the default): each instance of
    the function has its own circuits."""

    def __init__(self) -> None:
        self._states: dict[str, CircuitState] = {}
        self._lock = threading.Lock()

    def load(self, name: str) -> CircuitState | None:
        """The state of circuit ``name``, or None."""
        return self._states.get(name)

    def save(self, name: str, state: CircuitState, expected_version: int) -> bool:
        """Store ``state`` if the stored version is ``expected_version``."""
        with self._lock:
            current = self._states.get(name)
            if (0 if current is None else current.version) != expected_version:
                return False
            self._states[name] = state
            return True


class DynamoDBCircuitStore(CircuitStore):
    """Circuit states in a DynamoDB table, shared by every instance of the function.

    One item per circuit, keyed by its name in the string attribute
    ``key_attribute`` (the table's partition key, ``"circuit"`` by default).
    Writes are conditional on the version read, and set ``ttl_attribute``
    (``"expires_at"``, epoch seconds) to ``ttl`` seconds after the change:
    enable TTL on it and circuits left alone disappear. Reads are strongly
    consistent. ``client``: a boto3 DynamoDB client; by default one with
    ``timeout`` seconds (1) to connect and read and two attempts, so that a
    slow store delays the protected call little. The function's role needs
    ``dynamodb:GetItem`` and ``dynamodb:PutItem`` on the table.
    """

    def __init__(
        self,
        table_name: str,
        *,
        key_attribute: str = "circuit",
        ttl_attribute: str = "expires_at",
        ttl: float = _CIRCUIT_TTL,
        client: Any = None,
        timeout: float = 1.0,
    ) -> None:
        if not isinstance(table_name, str) or not table_name:
            raise ValueError(
                f"table_name must be a non-empty string, not {table_name!r}"
            )
        self.table_name = table_name
        self.key_attribute = key_attribute
        self.ttl_attribute = ttl_attribute
        self.ttl = _number("ttl", ttl, positive=True)
        self.timeout = _number("timeout", timeout, positive=True)
        self._client = client

    def __repr__(self) -> str:
        return f"<DynamoDBCircuitStore {self.table_name!r}>"

    @property
    def client(self) -> Any:
        """The DynamoDB client (created at first use)."""
        if self._client is None:
            self._client = _aws_client("dynamodb", self.timeout, attempts=2)
        return self._client

    def load(self, name: str) -> CircuitState | None:
        """The state of circuit ``name`` (a strongly consistent read), or None."""
        answer = self.client.get_item(
            TableName=self.table_name,
            Key={self.key_attribute: {"S": name}},
            ConsistentRead=True,
        )
        item = answer.get("Item")
        if not item:
            return None

        def number(attribute: str) -> float | None:
            value = item.get(attribute)
            return float(value["N"]) if value else None

        return CircuitState(
            item["state"]["S"],
            tuple(float(v["N"]) for v in item.get("failures", {}).get("L", [])),
            number("opened_at"),
            number("trial_started_at"),
            int(item["version"]["N"]),
        )

    def save(self, name: str, state: CircuitState, expected_version: int) -> bool:
        """A conditional put: only over ``expected_version`` (0: no item yet)."""
        item: dict[str, Any] = {
            self.key_attribute: {"S": name},
            "state": {"S": state.state},
            "failures": {"L": [{"N": f"{t:.6f}"} for t in state.failures]},
            "version": {"N": str(state.version)},
            self.ttl_attribute: {"N": str(int(time.time() + self.ttl))},
        }
        for attribute in ("opened_at", "trial_started_at"):
            value = getattr(state, attribute)
            if value is not None:
                item[attribute] = {"N": f"{value:.6f}"}
        if expected_version == 0:
            condition = "attribute_not_exists(#key)"
            names = {"#key": self.key_attribute}
            values = None
        else:
            condition = "#version = :version"
            names = {"#version": "version"}
            values = {":version": {"N": str(expected_version)}}
        arguments: dict[str, Any] = {
            "TableName": self.table_name,
            "Item": item,
            "ConditionExpression": condition,
            "ExpressionAttributeNames": names,
        }
        if values is not None:
            arguments["ExpressionAttributeValues"] = values
        try:
            self.client.put_item(**arguments)
        except Exception as error:
            if _error_code(error) == "ConditionalCheckFailedException":
                return False
            raise
        return True


class _Permit:
    """A call let through by a circuit: the state it entered (None: store failed)."""

    __slots__ = ("state",)

    def __init__(self, state: CircuitState | None) -> None:
        self.state = state


def _call_name(func: Callable[..., Any]) -> str:
    """A function's qualified name (a callable object's class) for log lines."""
    return str(getattr(func, "__qualname__", None) or type(func).__qualname__)


def _exception_classes(name: str, value: object) -> tuple[type[BaseException], ...]:
    classes = value if isinstance(value, tuple) else (value,)
    if not classes or not all(
        isinstance(c, type) and issubclass(c, BaseException) for c in classes
    ):
        raise TypeError(
            f"{name} must be an exception class or a tuple of them, not {value!r}"
        )
    return classes


def _whole(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a whole number >= 1, not {value!r}")
    return value


# ---------------------------------------------------------------------------
# OAuth tokens: client-credentials access tokens, cached and refreshed early
# ---------------------------------------------------------------------------

_TOKEN_KEY = "BEARER_TOKEN"
# A token is refreshed at a random moment between these many seconds before
# it expires (at most half its lifetime before), so that the instances of a
# function spread their refreshes instead of all asking at once.
_TOKEN_REFRESH_WINDOW = (60.0, 300.0)
_TOKEN_EXPIRY_MARGIN = 10.0  # seconds before expiry a token is no longer handed out
_TOKEN_LIFETIME = 300.0  # seconds, when neither the answer nor the token tells
_TOKEN_RETRY_WAIT = 5.0  # seconds between refresh attempts after one failed
_TOKEN_TIMEOUT = (3.0, 10.0)
_CLIENT_ID_VARIABLE = "FLEECE_OAUTH_CLIENT_ID"
_CLIENT_SECRET_VARIABLE = "FLEECE_OAUTH_CLIENT_SECRET"

if TYPE_CHECKING:
    from typing import Protocol

    class _TokenStore(Protocol):
        """Where tokens are shared between instances (metis-app's protocol)."""

        def read(self, key: str) -> str | None: ...

        def write(self, key: str, value: str) -> object: ...


class ClientCredentialsToken:
    """An OAuth 2.0 access token of this service (client credentials grant), always valid.

    ::

        orders_token = ClientCredentialsToken(
            "https://auth.example.com/oauth2/token",
            client_id=lambda: get_parameter("/orders/client-id"),
            client_secret=lambda: get_secret("orders/client-secret"),
            scope="orders/read",
        )
        orders = HttpClient("https://orders.example.com")

        def handler(event, context):
            orders.get("orders/7", headers={"Authorization": f"Bearer {orders_token.token()}"})

    `token` returns the token held in memory; else one read from ``store``
    (any object with ``read(key) -> str | None`` and ``write(key, token)``,
    ``key`` being ``"BEARER_TOKEN"`` by default: metis-app's protocol), so
    that instances share it; else a new one from ``token_url``, which is
    then written to ``store``. Tokens are refreshed before they expire, at a
    random moment 60 to 300 seconds ahead (``refresh_window``; at most half
    the token's lifetime), so that concurrent instances do not all call the
    endpoint at once; threads of one instance wait for one request, or keep
    using the current token while it runs. A token is not handed out in its
    last 10 s (a short-lived one is refreshed before). When a refresh fails,
    the current token is served until then (no new attempt for 5 s), and
    only then does `token` raise `TokenError`. Without a token, a failed
    attempt is not repeated for 5 s either: meanwhile `token` raises its
    error again at once, in this thread and in those that waited for it.

    ``client_id`` and ``client_secret`` are strings, or functions returning
    them (called at each request to the endpoint, so that a rotated secret
    is picked up): read from ``fleece_config``'s ``load_config()``, or from
    SSM and Secrets Manager with `get_parameter` and `get_secret`. When
    None, they come from the environment variables
    ``FLEECE_OAUTH_CLIENT_ID`` and ``FLEECE_OAUTH_CLIENT_SECRET``. They are
    sent with HTTP Basic authentication (``auth="basic"``, RFC 6749's
    default), or in the form body (``auth="body"``: Auth0 and others).
    ``scope`` (a string or a list) and ``audience`` join the request when
    given.

    The request goes through ``client`` (an `HttpClient`; by default one
    that waits 3 s to connect and 10 s to read, retries twice) and, when
    given, the ``circuit`` (a `CircuitBreaker`). The token's expiry is the
    answer's ``expires_in``, else the token's own ``exp`` claim when it is a
    JWT, else 5 minutes. Only JWTs are written to ``store`` (their expiry
    travels with them). ``clock`` (``time.time`` by default) lets tests move
    time. The secret and the tokens never reach a log line, an error
    message or ``repr``.
    """

    def __init__(
        self,
        token_url: str,
        client_id: str | Callable[[], str] | None = None,
        client_secret: str | Callable[[], str] | None = None,
        scope: str | Iterable[str] | None = None,
        audience: str | None = None,
        store: _TokenStore | None = None,
        circuit: CircuitBreaker | None = None,
        *,
        key: str = _TOKEN_KEY,
        auth: str = "basic",
        refresh_window: tuple[float, float] = _TOKEN_REFRESH_WINDOW,
        client: HttpClient | None = None,
        clock: Callable[[], float] | None = None,
    ) -> None:
        if not isinstance(token_url, str) or "://" not in token_url:
            raise ValueError(f"token_url must be an http(s) URL, not {token_url!r}")
        if auth not in ("basic", "body"):
            raise ValueError(f'auth must be "basic" or "body", not {auth!r}')
        early, late = refresh_window
        if not 0 <= early <= late:
            raise ValueError(
                f"refresh_window must be (earliest, latest) seconds with "
                f"0 <= earliest <= latest, not {refresh_window!r}"
            )
        self.token_url = token_url
        self.scope = (
            scope if scope is None or isinstance(scope, str) else " ".join(scope)
        )
        self.audience = audience
        self.store = store
        self.circuit = circuit
        self.key = key
        self.auth = auth
        self.refresh_window = (float(early), float(late))
        self.clock = clock or time.time
        self._client_id = client_id
        self._client_secret = client_secret
        self._client = client
        self._held: _HeldToken | None = None
        # After a failed attempt: no new one before _retry_at; without a
        # usable token, `token` raises the failure's error meanwhile.
        self._retry_at = 0.0
        self._failure: TokenError | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"<ClientCredentialsToken {self.token_url.partition('?')[0]}>"

    def token(self) -> str:
        """A valid access token: held, stored, or new (see the class)."""
        held = self._held
        now = self.clock()
        if held is not None and now < held.refresh_at:
            return held.value
        if held is not None and now < held.usable_until:
            # Another thread may be refreshing it: keep using this one meanwhile.
            if not self._lock.acquire(blocking=False):
                return held.value
        else:
            self._lock.acquire()
        try:
            return self._refreshed()
        finally:
            self._lock.release()

    def invalidate(self) -> None:
        """Forget the held token (the API refused it): the next `token` gets a new one."""
        with self._lock:
            self._held, self._retry_at, self._failure = None, 0.0, None

    def _refreshed(self) -> str:
        """The token after a refresh, if one is due (the lock is held)."""
        now = self.clock()
        held = self._held
        if held is not None and (
            now < held.refresh_at or (now < self._retry_at and now < held.usable_until)
        ):
            return held.value
        failure = self._failure
        if failure is not None and now < self._retry_at:
            # The attempt of a moment ago failed (maybe in a thread this one
            # waited for): its error, without asking again.
            raise TokenError(str(failure)) from failure
        stored = self._read_store(now)
        if stored is not None and now < stored.refresh_at:
            self._held = stored
            return stored.value
        try:
            fresh = self._request(now)
        except (TokenError, HttpConnectionError, CircuitOpenError) as error:
            if isinstance(error, TokenError):
                failure = error
            else:
                failure = TokenError(f"no access token from {self._where()}: {error}")
                failure.__cause__ = error
            self._failure, self._retry_at = failure, now + _TOKEN_RETRY_WAIT
            current = max(
                (t for t in (held, stored) if t is not None and now < t.usable_until),
                key=lambda t: t.usable_until,
                default=None,
            )
            if current is None:
                raise failure from failure.__cause__
            self._held = current
            get_logger("fleece_runtime.token").warning(
                "Token refresh failed: the current token is served until it expires",
                token_url=self._where(),
                expires_in=round(current.expires_at - now, 1),
                error=f"{type(error).__name__}: {error}"[:300],
            )
            return current.value
        self._held, self._retry_at, self._failure = fresh, 0.0, None
        self._write_store(fresh)
        return fresh.value

    def _request(self, now: float) -> _HeldToken:
        """A new token from the endpoint, through the circuit when there is one."""
        if self.circuit is not None:
            return self.circuit.call(self._post, now)
        return self._post(now)

    def _post(self, now: float) -> _HeldToken:
        form: dict[str, str] = {"grant_type": "client_credentials"}
        if self.scope:
            form["scope"] = self.scope
        if self.audience:
            form["audience"] = self.audience
        client_id = _credential(self._client_id, _CLIENT_ID_VARIABLE, "client_id")
        secret = _credential(
            self._client_secret, _CLIENT_SECRET_VARIABLE, "client_secret"
        )
        headers = {"Accept": "application/json"}
        if self.auth == "basic":
            import base64
            from urllib.parse import quote_plus

            # RFC 6749 2.3.1: both are form-encoded before Basic encoding.
            pair = f"{quote_plus(client_id)}:{quote_plus(secret)}"
            headers["Authorization"] = (
                "Basic " + base64.b64encode(pair.encode()).decode()
            )
        else:
            form["client_id"], form["client_secret"] = client_id, secret
        if self._client is None:
            self._client = HttpClient(timeout=_TOKEN_TIMEOUT, retries=2)
        response = self._client.post(
            self.token_url, data=form, headers=headers, idempotent=True
        )
        answer = _token_answer(response, self._where())
        value = answer["access_token"]
        lifetime = answer.get("expires_in")
        if isinstance(lifetime, str) and lifetime.isdigit():
            lifetime = int(lifetime)
        if isinstance(lifetime, int | float) and not isinstance(lifetime, bool):
            return self._held_token(value, now + lifetime, now)
        claims = _jwt_expiry(value)
        if claims is not None:
            return self._held_token(value, claims[0], claims[1] or now)
        return self._held_token(value, now + _TOKEN_LIFETIME, now)

    def _held_token(
        self, value: str, expires_at: float, issued_at: float
    ) -> _HeldToken:
        """The token with its expiry and this instance's random refresh moment."""
        import random

        early, late = self.refresh_window
        lifetime = max(0.0, expires_at - issued_at)
        ahead = min(early + random.random() * (late - early), lifetime / 2)
        return _HeldToken(value, expires_at, expires_at - ahead)

    def _read_store(self, now: float) -> _HeldToken | None:
        if self.store is None:
            return None
        try:
            value = self.store.read(self.key)
        except Exception as error:  # noqa: BLE001 (a store never fails token())
            self._store_failed("read", error)
            return None
        if not isinstance(value, str) or not value:
            return None
        claims = _jwt_expiry(value)
        if claims is None:
            return None
        expires_at, issued_at = claims
        held = self._held_token(value, expires_at, issued_at or now)
        return held if now < held.usable_until else None

    def _write_store(self, token: _HeldToken) -> None:
        if self.store is None or _jwt_expiry(token.value) is None:
            return
        try:
            self.store.write(self.key, token.value)
        except Exception as error:  # noqa: BLE001
            self._store_failed("write", error)

    def _store_failed(self, operation: str, error: BaseException) -> None:
        get_logger("fleece_runtime.token").warning(
            "Token store failed",
            operation=operation,
            key=self.key,
            error=type(error).__name__,
        )

    def _where(self) -> str:
        return self.token_url.partition("?")[0]


class TokenError(Exception):
    """No access token: the endpoint refused the credentials, answered
    something else than a token, or could not be reached while no valid
    token was held. The message names the endpoint and the OAuth error code
    (``invalid_client``...), never a secret or a token."""


class _HeldToken:
    """A token, when it expires, and when this instance refreshes it."""

    __slots__ = ("expires_at", "refresh_at", "usable_until", "value")

    def __init__(self, value: str, expires_at: float, refresh_at: float) -> None:
        self.value = value
        self.expires_at = expires_at
        self.usable_until = expires_at - _TOKEN_EXPIRY_MARGIN
        # A short-lived token is refreshed before it stops being handed out.
        self.refresh_at = min(refresh_at, self.usable_until)

    def __repr__(self) -> str:
        return f"<token expiring at {self.expires_at:.0f}>"


def _credential(given: str | Callable[[], str] | None, variable: str, name: str) -> str:
    """A client id or secret: given, computed, or from the environment."""
    value = given
    if callable(given):
        try:
            value = given()
        except Exception as error:
            # Its message could quote what it read: only its type is told.
            raise TokenError(
                f"the OAuth {name} could not be read ({type(error).__name__})"
            ) from error
    if value is None:
        value = os.environ.get(variable)
        if not value:
            raise TokenError(
                f"no OAuth {name}: pass {name}= or set the environment variable {variable}"
            )
    if not isinstance(value, str) or not value:
        raise TokenError(f"the OAuth {name} must be a non-empty string")
    return value


def _token_answer(response: HttpResponse, where: str) -> dict[str, Any]:
    """The token endpoint's JSON answer, or `TokenError` saying what it refused."""
    try:
        answer = json.loads(response.content)
    except ValueError:
        answer = None
    if response.status >= 400:
        code = answer.get("error") if isinstance(answer, dict) else None
        # An OAuth error code is a short word; anything else is left out.
        known = (
            isinstance(code, str)
            and len(code) <= 64
            and code.replace("_", "").isalnum()
        )
        raise TokenError(
            f"the token endpoint {where} answered {response.status}"
            + (f" {code}" if known else "")
        )
    if not isinstance(answer, dict):
        raise TokenError(f"the token endpoint {where} did not answer a JSON object")
    token = answer.get("access_token")
    if not isinstance(token, str) or not token:
        raise TokenError(
            f"the answer of the token endpoint {where} holds no access_token"
        )
    kind = answer.get("token_type")
    if isinstance(kind, str) and kind.lower() != "bearer":
        raise TokenError(
            f"the token endpoint {where} gave a {kind[:20]!r} token, not a bearer token"
        )
    return answer


def _jwt_expiry(token: str) -> tuple[float, float | None] | None:
    """(exp, iat) of a JWT, read without verifying it; None for other tokens."""
    try:
        _, claims = decode_jwt(token)
    except JwtError:
        return None
    expires, issued = claims.get("exp"), claims.get("iat")
    if isinstance(expires, bool) or not isinstance(expires, int | float):
        return None
    if isinstance(issued, bool) or not isinstance(issued, int | float):
        issued = None
    return float(expires), issued


# ---------------------------------------------------------------------------
# JWT: bearer tokens verified against a JWKS, in pure Python
# ---------------------------------------------------------------------------

# The algorithms a verifier accepts, and their hashes. HMAC (HS*) and
# "none" are absent on purpose: a key set holds public keys.
_JWT_HASHES = {
    "RS256": "sha256",
    "RS384": "sha384",
    "RS512": "sha512",
    "ES256": "sha256",
}
_JWT_LEEWAY = 30.0  # seconds of clock skew allowed on exp, nbf and iat
_JWT_MAX_LENGTH = 16384  # characters: more is refused before any decoding
_JWT_TIME_LIMIT = 1e15  # seconds: larger times, NaN and infinities are refused
# Seconds a fetched key set is used before it is fetched again; and at most
# one fetch per interval for tokens naming keys the set does not hold.
_JWKS_MAX_AGE = 3600.0
_JWKS_REFETCH_INTERVAL = 30.0
_RSA_MIN_BITS = 2048
_RSA_MAX_BITS = 8192
# The DER prefix of each hash's DigestInfo (RFC 8017, 9.2, note 1).
_DIGEST_INFO = {
    "sha256": bytes.fromhex("3031300d060960864801650304020105000420"),
    "sha384": bytes.fromhex("3041300d060960864801650304020205000430"),
    "sha512": bytes.fromhex("3051300d060960864801650304020305000440"),
}
# The curve P-256 (SEC 2: secp256r1): field prime, b (a is -3), group order, base point.
_P256_P = 0xFFFFFFFF00000001000000000000000000000000FFFFFFFFFFFFFFFFFFFFFFFF
_P256_B = 0x5AC635D8AA3A93E7B3EBBD55769886BC651D06B0CC53B0F63BCE3C3E27D2604B
_P256_N = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
_P256_GX = 0x6B17D1F2E12C4247F8BCE6E563A440F277037D812DEB33A0F4A13945D898C296
_P256_GY = 0x4FE342E2FE1A7F9B8EE7EB4A7C0F9E162BCE33576B315ECECBB6406837BF51F5
# A scalar is cut into 4 parts of 64 bits, each multiplying its own point
# (P, 2**64 P, 2**128 P, 2**192 P): 64 doublings per verification instead
# of 256, for tables computed once per key.
_P256_PARTS = 4
_P256_G_WIDTH = 7  # window of the base point's tables: 32 points each, once
_P256_Q_WIDTH = 5  # window of each key's tables: 8 points each


def bearer_token(headers: Mapping[str, str] | HttpRequest) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header; None without one.

    ``headers`` is a mapping of request headers (any case of names: a Lambda
    event's ``headers``), or the `Router`'s `HttpRequest`. A header of
    another scheme (``Basic ...``) gives None; ``Bearer`` without a single
    token after it raises `JwtError`.
    """
    if isinstance(headers, HttpRequest):
        headers = headers.headers
    elif not isinstance(headers, Mapping):
        raise TypeError("bearer_token needs headers, or the Router's HttpRequest")
    value = headers.get("Authorization")
    if value is None:
        value = headers.get("authorization")
    if value is None:
        lowered = (v for k, v in headers.items() if str(k).lower() == "authorization")
        value = next(lowered, None)
    if not isinstance(value, str):
        return None
    scheme, _, token = value.strip().partition(" ")
    if scheme.lower() != "bearer":
        return None
    token = token.strip()
    if not token or " " in token or "," in token:
        raise JwtError(
            "malformed", "the Authorization header holds no single bearer token"
        )
    return token


def decode_jwt(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The header and the claims of a JWT, NOT verified: never trust them.

    For reading what a token says about itself (its ``kid``, its ``exp``
    for a cache). `JwtVerifier.verify` is what checks a token. Raises
    `JwtError` for a malformed token.
    """
    header, claims, _, _ = _jwt_parts(token)
    return header, claims


class JwtVerifier:
    """Verifies JWTs (JWS compact form) against the public keys of a JWKS.

    ::

        verifier = JwtVerifier(
            "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_Ab12/.well-known/jwks.json",
            issuer="https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_Ab12",
            audience="orders-api",
        )

        claims = verifier.verify(bearer_token(event["headers"]))   # or JwtError

    `verify` returns the claims of a token whose signature verifies with
    the key its header names (``kid``) and whose claims hold: ``exp`` (a
    required claim by default: ``required_claims``), ``nbf`` and ``iat``,
    each with ``leeway`` seconds (30) of clock skew (numbers, finite; a
    required claim that is null is missing); ``iss`` equal to ``issuer``
    (when given); ``aud`` holding ``audience`` (each a string or several).
    A token with an ``aud`` claim is refused by a verifier without
    ``audience``: it is meant for other services (RFC 7519, 4.1.3), unless
    ``any_audience=True`` says that every audience is accepted. Anything
    else raises `JwtError`, whose message says what is wrong without
    repeating the token or its claims.

    ``algorithms``: RS256 by default; RS384, RS512 and ES256 (P-256) may be
    added. ``alg: none``, HMAC (HS256...) and other algorithms are always
    refused, and so is a key used with another algorithm than its own
    (``alg`` of the key, or its type). The signature is checked in pure
    Python (RSASSA-PKCS1-v1_5: one modular exponentiation; ECDSA: P-256
    arithmetic): no dependency.

    The key set is fetched from ``jwks_url`` with ``client`` (an
    `HttpClient`; by default one that waits 3 s to connect and 5 s to read)
    at the first `verify`, then every ``max_age`` seconds (3600), and once
    more when a token names a key it does not hold (a rotation), at most
    once per ``refetch_interval`` seconds (30), so that tokens with made-up
    ``kid`` values cannot make the function hammer the endpoint. When a
    fetch fails, the keys fetched before stay in use; with none,
    `JwksError` is raised. Either way the endpoint is not asked again
    before ``refetch_interval`` seconds (meanwhile, without keys, `verify`
    raises the same `JwksError` at once), and the keys held keep their age:
    their refresh after ``max_age`` is not postponed. ``jwks`` gives the key set itself instead of a
    URL. Keys are validated as they are read: RSA moduli of 2048 to 8192
    bits, odd, with an odd public exponent below 2**32 and the modulus; EC
    points on P-256; ``use`` of ``sig`` and ``key_ops`` with ``verify``
    when present. A key that fails is left out with a warning (logger
    ``fleece_runtime.jwt``), and the others are used. ``clock``
    (``time.time``) lets tests move time.
    """

    def __init__(
        self,
        jwks_url: str | None = None,
        *,
        issuer: str | Iterable[str] | None = None,
        audience: str | Iterable[str] | None = None,
        any_audience: bool = False,
        algorithms: Iterable[str] = ("RS256",),
        leeway: float = _JWT_LEEWAY,
        required_claims: Iterable[str] = ("exp",),
        jwks: Mapping[str, Any] | None = None,
        max_age: float = _JWKS_MAX_AGE,
        refetch_interval: float = _JWKS_REFETCH_INTERVAL,
        client: HttpClient | None = None,
        clock: Callable[[], float] | None = None,
    ) -> None:
        if (jwks_url is None) == (jwks is None):
            raise ValueError(
                "JwtVerifier needs jwks_url or jwks (a key set): one of them"
            )
        self.algorithms = tuple(algorithms)
        if not self.algorithms:
            raise ValueError("algorithms must name at least one algorithm")
        for algorithm in self.algorithms:
            if algorithm not in _JWT_HASHES:
                raise ValueError(
                    f"the algorithm {algorithm!r} is not supported: "
                    f"{', '.join(_JWT_HASHES)} are (never none, nor HMAC with a key set)"
                )
        self.jwks_url = jwks_url
        self.issuer = _names("issuer", issuer)
        self.audience = _names("audience", audience)
        if any_audience and self.audience is not None:
            raise ValueError("give audience or any_audience=True, not both")
        self.any_audience = any_audience
        self.leeway = _number("leeway", leeway, positive=False)
        self.required_claims = tuple(required_claims)
        self.max_age = _number("max_age", max_age, positive=True)
        self.refetch_interval = _number(
            "refetch_interval", refetch_interval, positive=False
        )
        self.clock = clock or time.time
        self._client = client
        self._keys = None if jwks is None else _key_set(jwks, "the key set given")
        # When the key set was last fetched, and last asked for (failed or not).
        self._fetched_at = self._attempted_at = float("-inf")
        self._failure: JwksError | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"<JwtVerifier {self.jwks_url or 'static key set'}>"

    def verify(self, token: str) -> dict[str, Any]:
        """The claims of ``token`` once its signature and claims check out; else `JwtError`."""
        header, claims, signed, signature = _jwt_parts(token)
        algorithm = header.get("alg")
        if not isinstance(algorithm, str) or algorithm.lower() == "none":
            raise JwtError("algorithm", "unsigned tokens (alg none) are refused")
        if algorithm not in self.algorithms:
            if algorithm.upper().startswith("HS"):
                raise JwtError(
                    "algorithm",
                    "HMAC-signed tokens (HS*) are refused: the key set holds public keys",
                )
            raise JwtError(
                "algorithm",
                f"the token's algorithm is not accepted (accepted: "
                f"{', '.join(self.algorithms)})",
            )
        if "crit" in header:
            raise JwtError(
                "malformed", "the token has critical header parameters (crit)"
            )
        key = self._key(header.get("kid"), algorithm)
        if not key.verifies(algorithm, signed, signature):
            raise JwtError("signature", "the token's signature does not verify")
        self._check_claims(claims)
        return claims

    def _key(self, kid: object, algorithm: str) -> _RsaKey | _EcKey:
        """The key that signed a token with this kid and algorithm."""
        if kid is not None and not isinstance(kid, str):
            raise JwtError("malformed", "the token's kid is not a string")
        kty = "EC" if algorithm.startswith("ES") else "RSA"
        key = self._current_keys().find(kid, kty)
        if key is None and self.jwks_url is not None:
            with self._lock:
                keys = self._keys
                if keys is not None:
                    key = keys.find(kid, kty)  # fetched meanwhile by another thread
                if (
                    key is None
                    and self.clock() - self._attempted_at >= self.refetch_interval
                ):
                    key = self._refetched(kid, kty)
        if key is None:
            raise JwtError(
                "key",
                (
                    "no key of the key set has the token's kid"
                    if kid is not None
                    else "the token names no key (kid) and the key set has no single "
                    f"{kty} key"
                ),
            )
        if key.kty != kty or (key.alg is not None and key.alg != algorithm):
            raise JwtError(
                "algorithm",
                f"the token's algorithm does not go with its key ({key.alg or key.kty})",
            )
        return key

    def _current_keys(self) -> _KeySet:
        keys = self._keys
        if keys is not None and (self.jwks_url is None or not self._fetch_due()):
            return keys
        with self._lock:
            keys = self._keys
            if not self._fetch_due():
                if keys is not None:
                    return keys
                # The last fetch failed moments ago: not asked again before
                # refetch_interval (another thread's attempt counts).
                raise JwksError(str(self._failure)) from self._failure
            try:
                return self._fetch()
            except JwksError as error:
                if keys is None:
                    raise
                get_logger("fleece_runtime.jwt").warning(
                    "Key set fetch failed: the keys fetched before are used",
                    jwks_url=self.jwks_url,
                    error=str(error),
                )
                return keys

    def _refetched(self, kid: str | None, kty: str) -> _RsaKey | _EcKey | None:
        """The key after fetching the key set again (a rotation), or None."""
        try:
            return self._fetch().find(kid, kty)
        except JwksError as error:
            # The token names a key nobody can show: refused as such, not a 500.
            get_logger("fleece_runtime.jwt").warning(
                "Key set fetch failed", jwks_url=self.jwks_url, error=str(error)
            )
            return None

    def _fetch_due(self) -> bool:
        """Whether the key set is older than max_age, and the last attempt
        older than refetch_interval."""
        now = self.clock()
        return (
            now - self._fetched_at >= self.max_age
            and now - self._attempted_at >= self.refetch_interval
        )

    def _fetch(self) -> _KeySet:
        """Fetch the key set now (the lock is held)."""
        url = self.jwks_url
        assert url is not None
        started = self._attempted_at = self.clock()
        if self._client is None:
            self._client = HttpClient(timeout=(3.0, 5.0), retries=1)
        try:
            keys = _key_set(self._client.get(url).raise_for_status().json(), url)
        except (HttpConnectionError, HttpStatusError, ValueError) as error:
            self._failure = JwksError(
                f"the key set at {url} could not be read: {error}"
            )
            raise self._failure from error
        except JwksError as error:
            self._failure = error
            raise
        # Only a key set read counts as fetched: a failure leaves the age of
        # the keys held, so their scheduled refresh comes on time.
        self._keys, self._fetched_at, self._failure = keys, started, None
        return keys

    def _check_claims(self, claims: dict[str, Any]) -> None:
        now = self.clock()
        leeway = self.leeway
        for name in self.required_claims:
            if claims.get(name) is None:
                raise JwtError("missing_claim", f"the token has no {name} claim")
        expires = _time_claim(claims, "exp")
        if expires is not None and now >= expires + leeway:
            raise JwtError("expired", f"the token expired {now - expires:.0f} s ago")
        not_before = _time_claim(claims, "nbf")
        if not_before is not None and now + leeway < not_before:
            raise JwtError("not_yet_valid", "the token is not valid yet (nbf)")
        issued = _time_claim(claims, "iat")
        if issued is not None and now + leeway < issued:
            raise JwtError(
                "issued_in_future", "the token was issued in the future (iat)"
            )
        issuer = claims.get("iss")
        if self.issuer is not None and (
            not isinstance(issuer, str) or issuer not in self.issuer
        ):
            raise JwtError("issuer", "the token was not issued by the expected issuer")
        audience = claims.get("aud")
        if self.any_audience or (audience is None and self.audience is None):
            return
        given = [audience] if isinstance(audience, str) else audience
        if (
            self.audience is None
            or not isinstance(given, list)
            or not any(
                isinstance(name, str) and name in self.audience for name in given
            )
        ):
            raise JwtError("audience", "the token is not meant for this audience")


class JwtError(Exception):
    """A token refused: malformed, badly signed, expired, not for this service.

    ``reason`` says which, in one word: ``missing``, ``malformed``,
    ``algorithm``, ``key``, ``signature``, ``expired``, ``not_yet_valid``,
    ``issued_in_future``, ``missing_claim``, ``issuer``, ``audience``. The
    message never holds the token or its claims' values.
    """

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class JwksError(Exception):
    """The key set could not be fetched or read, and none was held before.

    A fault of the function's side (the identity provider, the network),
    not of the caller's token: the middleware lets it through, and the
    Router answers 500.
    """


def jwt_middleware(
    verifier: JwtVerifier,
    *,
    required: bool = True,
    unauthorized: Callable[[JwtError], Any] | None = None,
) -> Callable[[Any, Callable[[Any], Any]], Any]:
    """A `Router` middleware: verified claims on ``request.claims``, or a 401.

    ::

        app = Router()
        app.use(jwt_middleware(JwtVerifier(JWKS_URL, issuer=ISSUER, audience="orders")))

        @app.get("/orders/{order_id}")
        def get_order(request: HttpRequest, order_id: str) -> dict[str, Any]:
            customer = request.claims["sub"]

    For every HTTP request, the bearer token of its ``Authorization``
    header is verified (`bearer_token`, `JwtVerifier.verify`) and its claims
    replace ``request.claims`` before the guard and the route run (so a
    guard can decide on them). Without a token, or with one that is
    refused, the route does not run: the answer is a 401 `HTTPError`
    response with ``WWW-Authenticate: Bearer`` (RFC 6750; with
    ``error="invalid_token"`` and what is wrong, for a refused token) and
    the body ``{"error": {"code": 401, "message": "Unauthorized",
    "details": {"reason": "expired"}}}`` (`JwtError.reason`), or what
    ``unauthorized(error)`` returns (any route return value). With
    ``required=False``, a request without a token goes on with the claims
    it had (those of an API Gateway authorizer, if any); a refused token is
    still refused. A refusal is logged at INFO (logger
    ``fleece_runtime.jwt``) with its reason, never the token. Other events
    (queue records...) pass through. `JwksError` (the key set is
    unavailable) is raised, so the Router answers 500, not 401.
    """
    answer = unauthorized or _unauthorized

    def middleware(view: Any, call_next: Callable[[Any], Any]) -> Any:
        if not isinstance(view, HttpRequest):
            return call_next(view)
        try:
            token = bearer_token(view.headers)
            if token is None:
                if not required:
                    return call_next(view)
                raise JwtError("missing", "no bearer token in the Authorization header")
            view.claims = verifier.verify(token)
        except JwtError as error:
            get_logger("fleece_runtime.jwt").info(
                "Token refused", reason=error.reason, error=str(error)
            )
            return answer(error)
        return call_next(view)

    return middleware


class _RsaKey:
    """An RSA public key of a key set."""

    __slots__ = ("alg", "e", "kid", "n", "size")
    kty = "RSA"

    def __init__(self, kid: str | None, alg: str | None, n: int, e: int) -> None:
        self.kid = kid
        self.alg = alg
        self.n = n
        self.e = e
        self.size = (n.bit_length() + 7) // 8

    def verifies(self, algorithm: str, signed: bytes, signature: bytes) -> bool:
        """RSASSA-PKCS1-v1_5 (RFC 8017, 8.2.2): the encoding is rebuilt and compared whole."""
        import hashlib
        import hmac

        size = self.size
        if len(signature) != size:
            return False
        number = int.from_bytes(signature, "big")
        if number >= self.n:
            return False
        name = _JWT_HASHES[algorithm]
        digest_info = _DIGEST_INFO[name] + getattr(hashlib, name)(signed).digest()
        expected = (
            b"\x00\x01"
            + b"\xff" * (size - len(digest_info) - 3)
            + b"\x00"
            + digest_info
        )
        message = pow(number, self.e, self.n).to_bytes(size, "big")
        return hmac.compare_digest(message, expected)


class _EcKey:
    """A P-256 public key of a key set, with its tables of multiples once used."""

    __slots__ = ("_tables", "alg", "kid", "x", "y")
    kty = "EC"

    def __init__(self, kid: str | None, alg: str | None, x: int, y: int) -> None:
        self.kid = kid
        self.alg = alg
        self.x = x
        self.y = y
        self._tables: list[list[tuple[int, int]]] | None = None

    def verifies(self, algorithm: str, signed: bytes, signature: bytes) -> bool:
        """ECDSA over P-256 with SHA-256 (FIPS 186-4, 6.4.2); the signature is r || s."""
        import hashlib

        n = _P256_N
        if len(signature) != 64:
            return False
        r = int.from_bytes(signature[:32], "big")
        s = int.from_bytes(signature[32:], "big")
        if not (0 < r < n and 0 < s < n):
            return False
        digest = int.from_bytes(hashlib.sha256(signed).digest(), "big")
        inverse = pow(s, -1, n)
        if self._tables is None:
            self._tables = _p256_tables(self.x, self.y, _P256_Q_WIDTH)
        x, _, z = _p256_combination(
            (
                (digest * inverse % n, _p256_base_tables(), _P256_G_WIDTH),
                (r * inverse % n, self._tables, _P256_Q_WIDTH),
            )
        )
        if z == 0:
            return False
        p = _P256_P
        return x * pow(z, -2, p) % p % n == r


class _KeySet:
    """The usable keys of a JWKS: by kid, and those without one."""

    __slots__ = ("by_kid", "unnamed")

    def __init__(self) -> None:
        self.by_kid: dict[str, _RsaKey | _EcKey] = {}
        self.unnamed: list[_RsaKey | _EcKey] = []

    def find(self, kid: str | None, kty: str) -> _RsaKey | _EcKey | None:
        """The key named ``kid``; without a kid, the only key of type ``kty``."""
        if kid is not None:
            return self.by_kid.get(kid)
        keys = [k for k in (*self.by_kid.values(), *self.unnamed) if k.kty == kty]
        return keys[0] if len(keys) == 1 else None


def _jwt_parts(token: object) -> tuple[dict[str, Any], dict[str, Any], bytes, bytes]:
    """(header, claims, signing input, signature) of a compact JWS."""
    if not isinstance(token, str):
        raise JwtError("malformed", "the token is not a string")
    if len(token) > _JWT_MAX_LENGTH:
        raise JwtError(
            "malformed", f"the token is longer than {_JWT_MAX_LENGTH} characters"
        )
    encoded_header, dot, rest = token.partition(".")
    encoded_claims, second_dot, encoded_signature = rest.partition(".")
    if not (dot and second_dot) or "." in encoded_signature:
        raise JwtError(
            "malformed",
            "a JWT is three base64url parts separated by dots "
            "(encrypted tokens are not supported)",
        )
    header = _jwt_object(encoded_header, "header")
    claims = _jwt_object(encoded_claims, "claims")
    signed = token[: len(encoded_header) + 1 + len(encoded_claims)].encode("ascii")
    return header, claims, signed, _base64url(encoded_signature, "signature")


def _jwt_object(encoded: str, part: str) -> dict[str, Any]:
    try:
        value = json.loads(_base64url(encoded, part))
    except ValueError:  # not UTF-8, or not JSON
        raise JwtError("malformed", f"the token's {part} is not JSON") from None
    if not isinstance(value, dict):
        raise JwtError("malformed", f"the token's {part} is not a JSON object")
    return value


def _base64url(text: str, part: str) -> bytes:
    """Strict base64url without padding (RFC 7515, 2): other characters are refused.

    So are bits set past the last byte: each value has one encoding, and a
    signed token one string.
    """
    import binascii

    if "+" in text or "/" in text or "=" in text or len(text) % 4 == 1:
        raise JwtError("malformed", f"the token's {part} is not base64url")
    padded = text.replace("-", "+").replace("_", "/") + "=" * (-len(text) % 4)
    try:
        data = binascii.a2b_base64(padded, strict_mode=True)
    except (binascii.Error, ValueError):
        data = None
    if data is None or binascii.b2a_base64(data, newline=False) != padded.encode():
        raise JwtError("malformed", f"the token's {part} is not base64url")
    return data


def _time_claim(claims: dict[str, Any], name: str) -> float | None:
    value = claims.get(name)
    if value is None:
        return None
    # json.loads reads NaN, Infinity and 1e999 (inf): none is a time.
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not -_JWT_TIME_LIMIT < value < _JWT_TIME_LIMIT
    ):
        raise JwtError("malformed", f"the token's {name} claim is not a number")
    return float(value)


def _names(what: str, value: str | Iterable[str] | None) -> frozenset[str] | None:
    if value is None:
        return None
    names = frozenset([value] if isinstance(value, str) else value)
    if not names or not all(isinstance(name, str) and name for name in names):
        raise ValueError(f"{what} must be a string or strings, not {value!r}")
    return names


def _unauthorized(error: JwtError) -> Response:
    """The 401 of `jwt_middleware`, with its RFC 6750 (3) challenge."""
    if error.reason == "missing":
        challenge = "Bearer"
    else:
        # RFC 6750's error_description excludes '"' and '\\'.
        text = str(error).replace('"', "'").replace("\\", "/")
        challenge = f'Bearer error="invalid_token", error_description="{text}"'
    return HTTPError(
        401, details={"reason": error.reason}, headers={"WWW-Authenticate": challenge}
    ).response()


def _key_set(document: object, where: str) -> _KeySet:
    """The usable keys of a JWKS document; a key that is not is left out, with a warning."""
    keys = document.get("keys") if isinstance(document, Mapping) else None
    if not isinstance(keys, list):
        raise JwksError(f"{where} is not a key set (a JSON object with a keys list)")
    found = _KeySet()
    for jwk in keys:
        try:
            key = _jwk(jwk)
        except (TypeError, ValueError) as error:
            kid = jwk.get("kid") if isinstance(jwk, Mapping) else None
            get_logger("fleece_runtime.jwt").warning(
                "Key set key left out", jwks=where, kid=kid, reason=str(error)
            )
            continue
        if key.kid is None:
            found.unnamed.append(key)
        else:
            found.by_kid[key.kid] = key
    return found


def _jwk(jwk: object) -> _RsaKey | _EcKey:
    """A JWK as a public key, checked; the error says why it cannot be used."""
    if not isinstance(jwk, Mapping):
        raise TypeError("a key is not a JSON object")
    kty, kid, alg = jwk.get("kty"), jwk.get("kid"), jwk.get("alg")
    if kid is not None and not isinstance(kid, str):
        raise ValueError("its kid is not a string")
    if jwk.get("use", "sig") != "sig":
        raise ValueError("its use is not sig")
    operations = jwk.get("key_ops")
    if operations is not None and (
        not isinstance(operations, list) or "verify" not in operations
    ):
        raise ValueError("its key_ops do not include verify")
    if alg is not None and alg not in _JWT_HASHES:
        raise ValueError(f"its algorithm {str(alg)[:20]!r} is not supported")
    if kty == "RSA":
        if alg is not None and not alg.startswith("RS"):
            raise ValueError(f"an RSA key cannot be for {alg}")
        n, e = _jwk_number(jwk, "n"), _jwk_number(jwk, "e")
        bits = n.bit_length()
        if not _RSA_MIN_BITS <= bits <= _RSA_MAX_BITS:
            raise ValueError(
                f"its modulus has {bits} bits (from {_RSA_MIN_BITS} to {_RSA_MAX_BITS} are used)"
            )
        if n % 2 == 0 or e % 2 == 0 or not 3 <= e < min(n, 2**32):
            raise ValueError("its modulus or exponent is not an RSA public key's")
        return _RsaKey(kid, alg, n, e)
    if kty == "EC":
        if jwk.get("crv") != "P-256":
            raise ValueError("its curve is not P-256 (the only one supported)")
        if alg is not None and alg != "ES256":
            raise ValueError(f"a P-256 key cannot be for {alg}")
        x, y = _jwk_number(jwk, "x", 32), _jwk_number(jwk, "y", 32)
        p = _P256_P
        if x >= p or y >= p or (y * y - x * x * x + 3 * x - _P256_B) % p:
            raise ValueError("its point is not on the curve P-256")
        return _EcKey(kid, alg, x, y)
    raise ValueError(f"its key type {str(kty)[:10]!r} is not supported (RSA or EC)")


def _jwk_number(jwk: Mapping[str, Any], name: str, size: int | None = None) -> int:
    value = jwk.get(name)
    if not isinstance(value, str) or not value:
        raise ValueError(f"its {name} is missing")
    try:
        data = _base64url(value, name)
    except JwtError:
        raise ValueError(f"its {name} is not base64url") from None
    if size is not None and len(data) != size:
        raise ValueError(f"its {name} is not {size} bytes long")
    return int.from_bytes(data, "big")


# P-256 arithmetic for ECDSA verification: Jacobian coordinates (X, Y, Z)
# for x = X/Z**2 and y = Y/Z**3, Z = 0 at infinity; a = -3. Only public values
# are involved, so nothing here needs to run in constant time.


def _p256_double(x: int, y: int, z: int) -> tuple[int, int, int]:
    """2P ("dbl-2001-b", a = -3)."""
    p = _P256_P
    if z == 0 or y == 0:
        return 1, 1, 0
    delta = z * z % p
    gamma = y * y % p
    beta = x * gamma % p
    alpha = 3 * (x - delta) * (x + delta) % p
    x3 = (alpha * alpha - 8 * beta) % p
    return x3, (alpha * (4 * beta - x3) - 8 * gamma * gamma) % p, 2 * y * z % p


def _p256_add(x1: int, y1: int, z1: int, x2: int, y2: int) -> tuple[int, int, int]:
    """P + Q for P Jacobian and Q affine ("madd-2007-bl"), edge cases included."""
    p = _P256_P
    if z1 == 0:
        return x2, y2, 1
    z1z1 = z1 * z1 % p
    h = (x2 * z1z1 - x1) % p
    r = 2 * (y2 * z1 * z1z1 - y1) % p
    if h == 0:
        return _p256_double(x1, y1, z1) if r == 0 else (1, 1, 0)
    hh = h * h % p
    i = 4 * hh
    j = h * i % p
    v = x1 * i % p
    x3 = (r * r - j - 2 * v) % p
    return x3, (r * (v - x3) - 2 * y1 * j) % p, 2 * z1 * h % p


def _p256_affine(x: int, y: int, z: int) -> tuple[int, int]:
    p = _P256_P
    inverse = pow(z, -1, p)
    square = inverse * inverse % p
    return x * square % p, y * square * inverse % p


def _p256_odd_multiples(x: int, y: int, width: int) -> list[tuple[int, int]]:
    """P, 3P, 5P, ... (2**(width-1) - 1)P, affine: the table of a window."""
    twice = _p256_affine(*_p256_double(x, y, 1))
    table = [(x, y)]
    for _ in range(2 ** (width - 2) - 1):
        table.append(_p256_affine(*_p256_add(*table[-1], 1, *twice)))
    return table


def _p256_tables(x: int, y: int, width: int) -> list[list[tuple[int, int]]]:
    """The window tables of P, 2**64 P, 2**128 P and 2**192 P."""
    tables = [_p256_odd_multiples(x, y, width)]
    for _ in range(_P256_PARTS - 1):
        jx, jy, jz = x, y, 1
        for _ in range(256 // _P256_PARTS):
            jx, jy, jz = _p256_double(jx, jy, jz)
        x, y = _p256_affine(jx, jy, jz)
        tables.append(_p256_odd_multiples(x, y, width))
    return tables


@functools.cache
def _p256_base_tables() -> list[list[tuple[int, int]]]:
    return _p256_tables(_P256_GX, _P256_GY, _P256_G_WIDTH)


def _wnaf(k: int, width: int) -> list[int]:
    """The width-w non-adjacent form of k, least significant digit first."""
    digits = []
    window, half = 1 << width, 1 << (width - 1)
    while k:
        digit = 0
        if k & 1:
            digit = k & (window - 1)
            if digit >= half:
                digit -= window
            k -= digit
        digits.append(digit)
        k >>= 1
    return digits


def _p256_combination(
    terms: tuple[tuple[int, list[list[tuple[int, int]]], int], ...],
) -> tuple[int, int, int]:
    """The sum of each scalar times its point (Jacobian), from the points' tables.

    Each scalar is cut into parts of 64 bits, each part in width-w NAF
    against its table: all the parts share one chain of 64 doublings.
    """
    p = _P256_P
    bits = 256 // _P256_PARTS
    mask = (1 << bits) - 1
    parts = []
    for scalar, tables, width in terms:
        for index, table in enumerate(tables):
            digits = _wnaf((scalar >> (bits * index)) & mask, width)
            if digits:
                parts.append((digits, len(digits), table))
    x, y, z = 1, 1, 0
    for index in range(max((part[1] for part in parts), default=0) - 1, -1, -1):
        if z:
            x, y, z = _p256_double(x, y, z)
        for digits, length, table in parts:
            digit = digits[index] if index < length else 0
            if digit:
                px, py = table[abs(digit) >> 1]
                x, y, z = _p256_add(x, y, z, px, py if digit > 0 else p - py)
    return x, y, z


# ---------------------------------------------------------------------------
# Result: typed Ok/Err pipelines
# ---------------------------------------------------------------------------

if TYPE_CHECKING:
    from typing import Generic as _Generic
    from typing import Literal, NoReturn, TypeAlias

    _T_co = TypeVar("_T_co", covariant=True)
    _E_co = TypeVar("_E_co", covariant=True)
    _U = TypeVar("_U")
    _F = TypeVar("_F")
    _X = TypeVar("_X", bound=BaseException)

    # Python 3.11 has no `type` statement.
    Result: TypeAlias = "Ok[_T_co] | Err[_E_co]"  # noqa: UP040
else:

    class _Generic:
        """A base that makes ``Ok[int]`` work at run time without importing typing."""

        __slots__ = ()

        def __class_getitem__(cls, parameters: object) -> type:
            return cls

    _T_co = _E_co = None

    class _ResultType:
        """``Ok[T] | Err[E]``: what a step of a pipeline returns (see `Ok`).

        An annotation (``Result[int, str]``); at run time, also a type for
        ``isinstance(value, Result)``.
        """

        __slots__ = ()

        def __getitem__(self, parameters: object) -> _ResultType:
            return self

        def __instancecheck__(self, value: object) -> bool:
            return isinstance(value, Ok | Err)

        def __repr__(self) -> str:
            return "fleece_runtime.Result"

    Result = _ResultType()


class Ok(_Generic[_T_co]):
    """A success holding ``value``: one of the two sides of a `Result`.

    ::

        def parse(text: str) -> Result[int, str]:
            return Ok(int(text)) if text.isdigit() else Err(f"not a number: {text}")

        total = parse("41").map(lambda n: n + 1).unwrap_or(0)     # 42

        match parse(text):
            case Ok(number):
                save(number)
            case Err(reason):
                logger.warning("refused", reason=reason)

    Each method of ``Ok`` has a counterpart on `Err` with the same name, so
    a pipeline is written once for both: `map` changes the value, `bind`
    (or `and_then`) chains a step that may fail, `map_err` and `unwrap_err`
    are for the error side and pass a success through.
    """

    __slots__ = ("value",)
    __match_args__ = ("value",)

    def __init__(self, value: _T_co) -> None:
        self.value = value

    def __repr__(self) -> str:
        return f"Ok({self.value!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Ok) and self.value == other.value

    def __hash__(self) -> int:
        return hash((Ok, self.value))

    def is_ok(self) -> Literal[True]:
        """True: this is a success."""
        return True

    def is_err(self) -> Literal[False]:
        """False: this is not an error."""
        return False

    def map(self, op: Callable[[_T_co], _U]) -> Ok[_U]:
        """``Ok(op(value))``."""
        return Ok(op(self.value))

    def map_err(self, op: object) -> Ok[_T_co]:
        """This success, unchanged (``op`` is for errors)."""
        return self

    def bind(self, op: Callable[[_T_co], Result[_U, _F]]) -> Result[_U, _F]:
        """``op(value)``: the next step of a pipeline, itself a `Result`."""
        return op(self.value)

    def and_then(self, op: Callable[[_T_co], Result[_U, _F]]) -> Result[_U, _F]:
        """`bind`, under Rust's name."""
        return op(self.value)

    def unwrap(self) -> _T_co:
        """The value."""
        return self.value

    def unwrap_or(self, default: object) -> _T_co:
        """The value (``default`` is for errors)."""
        return self.value

    def unwrap_or_else(self, op: object) -> _T_co:
        """The value (``op`` is for errors)."""
        return self.value

    def unwrap_err(self) -> NoReturn:
        """Raise `UnwrapError`: a success has no error."""
        raise UnwrapError(self, "unwrap_err() of an Ok")


class Err(_Generic[_E_co]):
    """A failure holding ``error``: the other side of a `Result` (see `Ok`).

    `map` and `bind` pass it through unchanged, so the first failure of a
    pipeline is the one that comes out; `map_err` changes the error;
    `unwrap` raises `UnwrapError` (from the error, when it is an
    exception); `unwrap_or` gives the default instead.
    """

    __slots__ = ("error",)
    __match_args__ = ("error",)

    def __init__(self, error: _E_co) -> None:
        self.error = error

    def __repr__(self) -> str:
        return f"Err({self.error!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Err) and self.error == other.error

    def __hash__(self) -> int:
        return hash((Err, self.error))

    def is_ok(self) -> Literal[False]:
        """False: this is not a success."""
        return False

    def is_err(self) -> Literal[True]:
        """True: this is an error."""
        return True

    def map(self, op: object) -> Err[_E_co]:
        """This error, unchanged (``op`` is for successes)."""
        return self

    def map_err(self, op: Callable[[_E_co], _F]) -> Err[_F]:
        """``Err(op(error))``."""
        return Err(op(self.error))

    def bind(self, op: object) -> Err[_E_co]:
        """This error, unchanged: the pipeline stops here."""
        return self

    def and_then(self, op: object) -> Err[_E_co]:
        """`bind`, under Rust's name."""
        return self

    def unwrap(self) -> NoReturn:
        """Raise `UnwrapError`, chained from the error when it is an exception."""
        error = self.error
        raise UnwrapError(self, f"unwrap() of an Err: {error!r}"[:500]) from (
            error if isinstance(error, BaseException) else None
        )

    def unwrap_or(self, default: _U) -> _U:
        """``default``."""
        return default

    def unwrap_or_else(self, op: Callable[[_E_co], _U]) -> _U:
        """``op(error)``."""
        return op(self.error)

    def unwrap_err(self) -> _E_co:
        """The error."""
        return self.error


class UnwrapError(Exception):
    """`Err.unwrap` (or `Ok.unwrap_err`) was called: ``result`` is the one unwrapped."""

    def __init__(self, result: Ok[Any] | Err[Any], message: str) -> None:
        super().__init__(message)
        self.result = result


def result_try(
    *exceptions: type[_X],
) -> Callable[[Callable[_P, _R]], Callable[_P, Result[_R, _X]]]:
    """Decorator: the function returns `Ok` of its result, or `Err` of an exception it raised.

    ::

        @result_try(KeyError, ValueError)
        def price(order: dict[str, str]) -> Decimal:
            return Decimal(order["price"])

        price({"price": "9.50"})      # Ok(Decimal('9.50'))
        price({})                     # Err(KeyError('price'))

    Only ``exceptions`` (and their subclasses) become `Err`; others are
    raised as usual. At least one type is needed: catching everything would
    hide bugs. The result is typed ``Result[R, E]``, E being what the
    exception types have in common.
    """
    if not exceptions or not all(
        isinstance(kind, type) and issubclass(kind, BaseException)
        for kind in exceptions
    ):
        raise TypeError("result_try needs one exception type or more")

    def decorate(func: Callable[_P, _R]) -> Callable[_P, Result[_R, _X]]:
        @functools.wraps(func)
        def tried(*args: _P.args, **kwargs: _P.kwargs) -> Result[_R, _X]:
            try:
                return Ok(func(*args, **kwargs))
            except exceptions as error:
                return Err(error)

        return tried

    return decorate


# ---------------------------------------------------------------------------
# Metrics: CloudWatch embedded metric format, one line per invocation
# ---------------------------------------------------------------------------

# The units CloudWatch knows (MetricDatum's Unit).
_METRIC_UNITS = frozenset(
    {
        "Seconds", "Microseconds", "Milliseconds",
        "Bytes", "Kilobytes", "Megabytes", "Gigabytes", "Terabytes",
        "Bits", "Kilobits", "Megabits", "Gigabits", "Terabits",
        "Percent", "Count",
        "Bytes/Second", "Kilobytes/Second", "Megabytes/Second",
        "Gigabytes/Second", "Terabytes/Second",
        "Bits/Second", "Kilobits/Second", "Megabits/Second",
        "Gigabits/Second", "Terabits/Second",
        "Count/Second", "None",
    }
)  # fmt: skip
_MAX_METRICS = 100  # metric definitions in one line, and values of one metric
_MAX_DIMENSIONS = 30  # keys of a dimension set
_METRIC_NAME_LIMIT = 255
_DIMENSION_VALUE_LIMIT = 1024
# CloudWatch refuses values beyond, and non-zero ones below 2**-360.
_METRIC_VALUE_LIMIT = 2.0**360
if TYPE_CHECKING:
    from typing import overload

    # (dimension names, (name, unit, resolution) of each metric) of an EMF line.
    _EmfShape = tuple[tuple[str, ...], tuple[tuple[str, str, int], ...]]

# True until the first invocation of a handler decorated by `Metrics.log_metrics`.
_metrics_cold_start = True


class Metrics:
    """CloudWatch metrics of a function, written as embedded metric format (EMF) lines.

    ::

        metrics = Metrics("Orders", service="orders")

        @metrics.log_metrics(capture_cold_start=True)
        def handler(event, context):
            metrics.add("OrderPlaced", 1, "Count")
            metrics.add("Latency", 12.5, "Milliseconds", resolution=1)
            metrics.add_dimension("channel", "web")
            metrics.add_metadata("order_id", order_id)   # searchable, not a dimension

    Lambda sends what a function writes to CloudWatch Logs, and CloudWatch
    extracts the metrics of EMF lines: no API call, no dependency. The
    decorator writes one JSON line to standard output when the handler
    returns or raises, holding every metric added during the invocation
    (values added under one name are kept together, up to 100), then
    forgets them, the dimensions added with `add_dimension` and the
    metadata. A line is also written as soon as 100 metrics, or 100 values
    of one metric, are held: EMF allows no more in one line. ``flush``
    writes the line without the decorator.

    Dimensions: ``service`` (when given) and `set_default_dimensions` for
    every invocation, `add_dimension` for this one; 30 at most in all.
    ``capture_cold_start`` adds a ``ColdStart`` metric (Count 1) in a line
    of its own, with the ``service`` and ``function_name`` dimensions, on
    the first invocation of the process. An invocation that adds no metric
    logs a warning (logger ``fleece_runtime.metrics``), or raises
    ``ValueError`` with ``raise_on_empty=True`` (not when the handler
    raised: its exception goes on). An ``async def`` handler's line is
    written when its coroutine ends.

    Everything is checked when added, against the EMF specification and
    CloudWatch's limits, so that a bad name fails at the line that adds it
    and never loses a line: names of 1 to 255 characters, not only spaces,
    not ``_aws`` (EMF's own key); CloudWatch's units (``"Count"``,
    ``"Milliseconds"``, ``"Bytes/Second"``, ... ``"None"``, the default);
    finite numbers CloudWatch accepts; ``resolution`` 60 (standard) or 1
    (high resolution); dimension names and values (1 to 1024 characters)
    in ASCII without control characters; one name for one thing (a metric,
    a dimension or metadata). ``stream`` (default: ``sys.stdout`` when writing) and
    ``clock`` (``time.time``, for the timestamp) are for tests. Safe to use
    from several threads.
    """

    def __init__(
        self,
        namespace: str,
        service: str | None = None,
        *,
        stream: IO[str] | None = None,
        clock: Callable[[], float] | None = None,
    ) -> None:
        if (
            not isinstance(namespace, str)
            or not 0 < len(namespace) <= _METRIC_NAME_LIMIT
            or not namespace.isascii()
            or not namespace.strip()
            or ":" in namespace
            or namespace.startswith("AWS/")
        ):
            raise ValueError(
                f"the namespace must be 1 to 255 ASCII characters, without ':' and "
                f"not starting with 'AWS/', not {namespace!r}"
            )
        self.namespace = namespace
        self.service = service
        self.stream = stream
        self.clock = clock or time.time
        self._defaults: dict[str, str] = {}
        self._dimensions: dict[str, str] = {}
        self._metadata: dict[str, Any] = {}
        # The JSON of the directive of each shape of line written (see _emf_line).
        self._directives: dict[_EmfShape, str] = {}
        # name -> (unit, resolution, values)
        self._metrics: dict[str, tuple[str, int, list[float]]] = {}
        self._lock = threading.Lock()
        if service is not None:
            self.set_default_dimensions(service=service)

    def __repr__(self) -> str:
        return f"<Metrics {self.namespace!r}>"

    def add(
        self, name: str, value: float, unit: str = "None", *, resolution: int = 60
    ) -> None:
        """Record ``value`` for the metric ``name`` (see the class for what is allowed)."""
        _check_metric_name("metric", name)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise TypeError(f"the value of {name} must be a number, not {value!r}")
        if not (
            abs(value) <= _METRIC_VALUE_LIMIT
            and (value == 0 or abs(value) >= 1 / _METRIC_VALUE_LIMIT)
        ):
            raise ValueError(f"CloudWatch cannot store {value!r} (metric {name})")
        if unit not in _METRIC_UNITS:
            raise ValueError(
                f"{unit!r} is not a CloudWatch unit: one of {', '.join(sorted(_METRIC_UNITS))}"
            )
        if resolution not in (1, 60):
            raise ValueError(
                f"resolution must be 60 or 1 (seconds), not {resolution!r}"
            )
        with self._lock:
            if (
                name in self._defaults
                or name in self._dimensions
                or name in self._metadata
            ):
                raise ValueError(f"{name!r} is already a dimension or metadata")
            held = self._metrics.get(name)
            if held is None:
                held = self._metrics[name] = (unit, resolution, [])
            elif held[:2] != (unit, resolution):
                raise ValueError(
                    f"the metric {name} was added in {held[0]} with resolution "
                    f"{held[1]}: a metric keeps one unit and one resolution"
                )
            held[2].append(value)
            if len(self._metrics) >= _MAX_METRICS or len(held[2]) >= _MAX_METRICS:
                self._write(self._line())
                self._metrics = {}

    def add_dimension(self, name: str, value: str) -> None:
        """A dimension of every metric of this invocation (``channel="web"``)."""
        self._dimension(name, value, default=False)

    def set_default_dimensions(self, **dimensions: str) -> None:
        """Dimensions of every metric of every invocation (``environment="prod"``)."""
        for name, value in dimensions.items():
            self._dimension(name, value, default=True)

    def add_metadata(self, key: str, value: Any) -> None:
        """A field of this invocation's line: searchable in the logs, not a dimension.

        ``value`` is anything `JsonEncoder` writes.
        """
        _check_metric_name("metadata key", key)
        if value is not None and not isinstance(value, str | int):
            try:
                json_dumps(value)
            except (TypeError, ValueError) as error:
                raise TypeError(
                    f"the metadata {key} cannot be written as JSON: {error}"
                ) from None
        with self._lock:
            if key in self._metrics or key in self._defaults or key in self._dimensions:
                raise ValueError(f"{key!r} is already a metric or a dimension")
            self._metadata[key] = value

    def flush(self, *, raise_on_empty: bool = False) -> None:
        """Write this invocation's line now, and forget its metrics, dimensions and metadata.

        Nothing added: a warning is logged, or ``ValueError`` raised with
        ``raise_on_empty=True``.
        """
        if self._flushed():
            return
        if raise_on_empty:
            raise ValueError(
                f"no metric was added to {self.namespace} in this invocation"
            )
        else:
            get_logger("fleece_runtime.metrics").warning(
                "No metric added in this invocation", namespace=self.namespace
            )

    if TYPE_CHECKING:

        @overload
        def log_metrics(self, handler: Callable[_P, _R], /) -> Callable[_P, _R]: ...

        @overload
        def log_metrics(
            self,
            handler: None = None,
            /,
            *,
            capture_cold_start: bool = False,
            raise_on_empty: bool = False,
        ) -> Callable[[Callable[_P, _R]], Callable[_P, _R]]: ...

    def log_metrics(
        self,
        handler: Callable[_P, _R] | None = None,
        /,
        *,
        capture_cold_start: bool = False,
        raise_on_empty: bool = False,
    ) -> Callable[_P, _R] | Callable[[Callable[_P, _R]], Callable[_P, _R]]:
        """Decorator of a handler ``(event, context)``: its metrics written when it ends.

        ``@metrics.log_metrics`` or ``@metrics.log_metrics(capture_cold_start=True,
        raise_on_empty=False)``: see the class. The line is written whether
        the handler returns or raises (a handler's exception is never
        replaced by ``raise_on_empty``'s). An ``async def`` handler's line is
        written when its coroutine ends.
        """

        def decorate(func: Callable[_P, _R]) -> Callable[_P, _R]:
            import inspect  # here, not at import: boto3 or asyncio has usually loaded it

            def start(args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
                global _metrics_cold_start
                cold, _metrics_cold_start = _metrics_cold_start, False
                if cold and capture_cold_start:
                    _, context = _event_and_context(args, kwargs)
                    self._write_cold_start(context or current_lambda_context())

            if inspect.iscoroutinefunction(func):
                run: Any = func

                @functools.wraps(func)
                async def measured_async(*args: Any, **kwargs: Any) -> Any:
                    start(args, kwargs)
                    try:
                        result = await run(*args, **kwargs)
                    except BaseException:
                        self._flushed()
                        raise
                    self.flush(raise_on_empty=raise_on_empty)
                    return result

                wrapped: Any = measured_async
                async_handler: Callable[_P, _R] = wrapped
                return async_handler

            @functools.wraps(func)
            def measured(*args: _P.args, **kwargs: _P.kwargs) -> _R:
                start(args, kwargs)
                try:
                    result = func(*args, **kwargs)
                except BaseException:
                    self._flushed()
                    raise
                self.flush(raise_on_empty=raise_on_empty)
                return result

            return measured

        return decorate if handler is None else decorate(handler)

    def _flushed(self) -> bool:
        """Write the line of the metrics held, if any, and forget the invocation's
        metrics, dimensions and metadata. Whether a line was written."""
        with self._lock:
            held = bool(self._metrics)
            if held:
                self._write(self._line())
            self._metrics, self._dimensions, self._metadata = {}, {}, {}
        return held

    def _dimension(self, name: str, value: str, *, default: bool) -> None:
        _check_metric_name("dimension", name)
        if name.startswith(":") or not _printable_ascii(name):
            raise ValueError(
                f"a dimension name is ASCII without control characters, not "
                f"starting with ':' ({name!r})"
            )
        if (
            not isinstance(value, str)
            or not 0 < len(value) <= _DIMENSION_VALUE_LIMIT
            or not _printable_ascii(value)
        ):
            raise ValueError(
                f"the value of the dimension {name} must be 1 to "
                f"{_DIMENSION_VALUE_LIMIT} printable ASCII characters, not only "
                f"spaces, not {value!r}"
            )
        with self._lock:
            if name in self._metrics or name in self._metadata:
                raise ValueError(f"{name!r} is already a metric or metadata")
            names = self._defaults.keys() | self._dimensions.keys()
            if name not in names and len(names) >= _MAX_DIMENSIONS:
                raise ValueError(
                    f"a metric has {_MAX_DIMENSIONS} dimensions at most: "
                    f"{name!r} is one too many"
                )
            (self._defaults if default else self._dimensions)[name] = value

    def _line(self) -> str:
        """The EMF line of the metrics held (the lock is held)."""
        return _emf_line(
            self.namespace,
            int(self.clock() * 1000),
            {**self._defaults, **self._dimensions},
            self._metrics,
            self._metadata,
            self._directives,
        )

    def _write_cold_start(self, context: Any) -> None:
        dimensions = {}
        if self.service is not None:
            dimensions["service"] = self.service
        function = getattr(context, "function_name", None) or os.environ.get(
            "AWS_LAMBDA_FUNCTION_NAME"
        )
        if isinstance(function, str) and function:
            dimensions["function_name"] = function
        cold_start: dict[str, tuple[str, int, list[float]]] = {
            "ColdStart": ("Count", 60, [1])
        }
        timestamp = int(self.clock() * 1000)
        with self._lock:  # the directives are shared with the invocation's lines
            self._write(
                _emf_line(
                    self.namespace,
                    timestamp,
                    dimensions,
                    cold_start,
                    {},
                    self._directives,
                )
            )

    def _write(self, line: str) -> None:
        """Write ``line`` (the lock is held, so that lines never interleave)."""
        (self.stream or sys.stdout).write(line + "\n")


def _check_metric_name(what: str, name: object) -> None:
    if (
        not isinstance(name, str)
        or not 0 < len(name) <= _METRIC_NAME_LIMIT
        or not name.strip()
    ):
        raise ValueError(
            f"a {what} name must be 1 to {_METRIC_NAME_LIMIT} characters, "
            f"not only spaces: {name!r}"
        )
    if name == "_aws":
        raise ValueError(f"_aws is EMF's own key, not a {what} name")


def _printable_ascii(text: str) -> bool:
    """Whether ``text`` is ASCII without control characters, and not only spaces."""
    return text.isascii() and text.isprintable() and not text.isspace()


def _emf_line(
    namespace: str,
    timestamp: int,
    dimensions: dict[str, str],
    metrics: dict[str, tuple[str, int, list[float]]],
    metadata: dict[str, Any],
    directives: dict[_EmfShape, str],
) -> str:
    """One EMF document: a directive for the metrics, then their values.

    A function writes lines of a few shapes (the same dimensions and
    metrics at each invocation): the JSON of each shape's directive is kept
    in ``directives``, so that a line encodes only its values.
    """
    shape = (
        tuple(dimensions),
        tuple(
            (name, unit, resolution) for name, (unit, resolution, _) in metrics.items()
        ),
    )
    directive = directives.get(shape)
    if directive is None:
        definitions = []
        for name, unit, resolution in shape[1]:
            definition: dict[str, Any] = {"Name": name, "Unit": unit}
            if resolution == 1:
                definition["StorageResolution"] = 1
            definitions.append(definition)
        directive = json_dumps(
            [
                {
                    "Namespace": namespace,
                    "Dimensions": [list(dimensions)],
                    "Metrics": definitions,
                }
            ]
        )
        if len(directives) >= _MAX_METRICS:  # names made up at run time: no growth
            directives.clear()
        directives[shape] = directive
    values: dict[str, Any] = {**dimensions, **metadata}
    for name, (_, _, held) in metrics.items():
        values[name] = held[0] if len(held) == 1 else held
    # ``values`` holds a metric at least: its JSON is "{...}", spliced after _aws.
    return f'{{"_aws":{{"Timestamp":{timestamp},"CloudWatchMetrics":{directive}}},{json_dumps(values)[1:]}'


# ---------------------------------------------------------------------------
# Parameters: SSM parameters and Secrets Manager secrets, cached
# ---------------------------------------------------------------------------

_PARAMETER_MAX_AGE = 60.0  # seconds a value is served from the cache
_PARAMETER_TIMEOUT = 3.0  # seconds to connect, and to read, per attempt
_SSM_BATCH = 10  # names per GetParameters call: SSM takes no more
_TRANSFORMS = (None, "json", "binary")
_parameter_lock = threading.Lock()
# (kind, name, decrypt, transform) -> (monotonic time it was fetched, raw value):
# the text (or bytes, or the dict of a path's texts), transformed at each read so
# that no caller gets an object another caller may have changed.
_parameter_cache: dict[tuple[str, str, bool, str | None], tuple[float, Any]] = {}


def get_parameter(
    name: str,
    *,
    decrypt: bool = True,
    max_age: float = _PARAMETER_MAX_AGE,
    transform: str | None = None,
    force_fetch: bool = False,
) -> Any:
    """The value of the SSM parameter ``name``, cached for ``max_age`` seconds.

    ::

        db_host = get_parameter("/orders/db/host")
        settings = get_parameter("/orders/settings", transform="json")

    A SecureString is decrypted (``decrypt=False`` returns its ciphertext).
    ``transform``: None (the text), ``"json"`` (the value parsed as JSON),
    ``"binary"`` (base64 decoded to bytes). A value is cached per process,
    transform included: a call gets the cached value when it was fetched
    less than ``max_age`` seconds ago (60), else a fresh one (``max_age=0``
    or ``force_fetch=True``: always fresh). The text is cached, and each
    call gets an object of its own (a JSON value is parsed again), so that
    changing it changes no later result. Raises
    `ParameterNotFound`; other refusals (access denied, throttling after
    botocore's retries) are botocore's errors. The function's role needs
    ``ssm:GetParameter`` (and ``kms:Decrypt`` on the key of a SecureString).
    """
    key = ("ssm", _parameter_name(name), bool(decrypt), _transform_name(transform))
    found, raw = _cached(key, force_fetch, max_age)
    if not found:
        try:
            answer = _parameter_client("ssm").get_parameter(
                Name=name, WithDecryption=decrypt
            )
        except Exception as error:
            if _error_code(error) == "ParameterNotFound":
                raise ParameterNotFound(f"no SSM parameter {name}") from None
            raise
        raw = answer["Parameter"]["Value"]
        value = _transformed(raw, transform, name)
        _cache(key, raw)
        return value
    return _transformed(raw, transform, name)


def get_parameters(
    names: Iterable[str],
    *,
    decrypt: bool = True,
    max_age: float = _PARAMETER_MAX_AGE,
    transform: str | None = None,
    force_fetch: bool = False,
) -> dict[str, Any]:
    """The values of several SSM parameters, by name: cached ones from the
    cache, the others in one ``GetParameters`` call per 10 names.

    The options are `get_parameter`'s, and the cache is the same. Raises
    `ParameterNotFound` naming every parameter that does not exist (the
    others are cached all the same). The role needs ``ssm:GetParameters``.
    """
    if isinstance(names, str):
        raise TypeError(
            "get_parameters takes a list of names (get_parameter takes one)"
        )
    wanted = list(dict.fromkeys(_parameter_name(name) for name in names))
    transform = _transform_name(transform)
    values: dict[str, Any] = {}
    missing: list[str] = []
    for name in wanted:
        key = ("ssm", name, bool(decrypt), transform)
        found, raw = _cached(key, force_fetch, max_age)
        if found:
            values[name] = _transformed(raw, transform, name)
        else:
            missing.append(name)
    unknown: list[str] = []
    client = _parameter_client("ssm") if missing else None
    for start in range(0, len(missing), _SSM_BATCH):
        batch = missing[start : start + _SSM_BATCH]
        assert client is not None
        answer = client.get_parameters(Names=batch, WithDecryption=decrypt)
        for parameter in answer.get("Parameters", []):
            # Asked for by name or ARN, with or without a :version or :label.
            selector = parameter.get("Selector") or ""
            name = parameter["Name"] + selector
            if name not in batch:
                name = parameter.get("ARN", "") + selector
            values[name] = _transformed(parameter["Value"], transform, name)
            _cache(("ssm", name, bool(decrypt), transform), parameter["Value"])
        unknown.extend(answer.get("InvalidParameters", []))
    if unknown:
        raise ParameterNotFound(f"no SSM parameters {', '.join(sorted(unknown))}")
    return {name: values[name] for name in wanted}


def get_parameters_by_path(
    path: str,
    *,
    recursive: bool = True,
    decrypt: bool = True,
    max_age: float = _PARAMETER_MAX_AGE,
    transform: str | None = None,
    force_fetch: bool = False,
) -> dict[str, Any]:
    """The SSM parameters under ``path``, by name relative to it, cached as a whole.

    ::

        get_parameters_by_path("/orders/db")   # {"host": "...", "credentials/user": "..."}

    ``recursive=True`` (the default) includes the whole tree below
    ``path``; False only its direct children. Every page of the answer is
    read. The other options are `get_parameter`'s; the transform applies to
    every value. No parameter under ``path`` gives an empty dict. The role
    needs ``ssm:GetParametersByPath``.
    """
    path = "/" + _parameter_name(path).strip("/")
    transform = _transform_name(transform)
    key = ("ssm-path", f"{path}:{bool(recursive)}", bool(decrypt), transform)
    found, cached = _cached(key, force_fetch, max_age)
    if found:
        return {
            relative: _transformed(raw, transform, relative)
            for relative, raw in cached.items()
        }
    raws: dict[str, str] = {}
    values: dict[str, Any] = {}
    client = _parameter_client("ssm")
    arguments: dict[str, Any] = {
        "Path": path,
        "Recursive": recursive,
        "WithDecryption": decrypt,
        "MaxResults": _SSM_BATCH,
    }
    while True:
        answer = client.get_parameters_by_path(**arguments)
        for parameter in answer.get("Parameters", []):
            name = parameter["Name"]
            relative = name[len(path) :].lstrip("/") if name.startswith(path) else name
            raws[relative] = parameter["Value"]
            values[relative] = _transformed(raws[relative], transform, name)
        token = answer.get("NextToken")
        if not token:
            break
        arguments["NextToken"] = token
    _cache(key, raws)
    return values


def get_secret(
    name: str,
    *,
    max_age: float = _PARAMETER_MAX_AGE,
    transform: str | None = None,
    force_fetch: bool = False,
) -> Any:
    """The current value of the Secrets Manager secret ``name`` (or ARN), cached.

    A secret stored as text is returned as text, a binary one as bytes;
    ``transform`` (``"json"``, ``"binary"``), ``max_age`` and
    ``force_fetch`` are `get_parameter`'s. Raises `ParameterNotFound` for
    a secret that does not exist. The role needs
    ``secretsmanager:GetSecretValue`` (and ``kms:Decrypt`` with a key of
    your own).
    """
    key = ("secret", _parameter_name(name), True, _transform_name(transform))
    found, raw = _cached(key, force_fetch, max_age)
    if found:
        return _transformed(raw, transform, name)
    try:
        answer = _parameter_client("secretsmanager").get_secret_value(SecretId=name)
    except Exception as error:
        if _error_code(error) == "ResourceNotFoundException":
            raise ParameterNotFound(f"no secret {name}") from None
        raise
    raw = answer.get("SecretString")
    if raw is None:
        raw = answer["SecretBinary"]
    value = _transformed(raw, transform, name)
    _cache(key, raw)
    return value


def clear_parameter_cache() -> None:
    """Forget every cached parameter and secret (tests; after a rotation)."""
    with _parameter_lock:
        _parameter_cache.clear()


class ParameterNotFound(LookupError):
    """No SSM parameter, or no secret, of that name. The message names it."""


def _parameter_name(name: object) -> str:
    if not isinstance(name, str) or not name:
        raise ValueError(f"a parameter name must be a non-empty string, not {name!r}")
    return name


def _transform_name(transform: str | None) -> str | None:
    if transform not in _TRANSFORMS:
        raise ValueError(
            f'transform must be None, "json" or "binary", not {transform!r}'
        )
    return transform


def _cached(
    key: tuple[str, str, bool, str | None], force: bool, max_age: float
) -> tuple[bool, Any]:
    """(True, value) when ``key`` is cached and fresh; (False, None) otherwise."""
    _number("max_age", max_age, positive=False)
    if force:
        return False, None
    entry = _parameter_cache.get(key)
    if entry is None or time.monotonic() - entry[0] >= max_age:
        return False, None
    return True, entry[1]


def _cache(key: tuple[str, str, bool, str | None], value: Any) -> None:
    with _parameter_lock:
        _parameter_cache[key] = (time.monotonic(), value)


def _transformed(raw: str | bytes, transform: str | None, name: str) -> Any:
    """The value as asked; the message of a failure names the parameter, not its value."""
    if transform == "json":
        try:
            return json.loads(raw)
        except ValueError:
            raise ValueError(f"the value of {name} is not JSON") from None
    if transform == "binary":
        if isinstance(raw, bytes):
            return raw
        import binascii

        try:
            return binascii.a2b_base64(raw, strict_mode=True)
        except (binascii.Error, ValueError):
            raise ValueError(f"the value of {name} is not base64") from None
    return raw


@functools.cache
def _parameter_client(service: str) -> Any:
    """The SSM or Secrets Manager client of this process (created at first use)."""
    return _aws_client(service, _PARAMETER_TIMEOUT, attempts=3)


# ---------------------------------------------------------------------------
# Idempotency: a repeated event gets the first call's result, not a second run
# ---------------------------------------------------------------------------

_IDEMPOTENCY_EXPIRES_AFTER = 3600.0  # seconds a result is kept
_IN_PROGRESS, _COMPLETED = "INPROGRESS", "COMPLETED"
_CLAIM_TRIES = 3


def idempotent(
    *,
    store: IdempotencyStore,
    key: str | Callable[[Any], Any] | None = None,
    expires_after: float = _IDEMPOTENCY_EXPIRES_AFTER,
    payload_validation: bool | str | Callable[[Any], Any] = False,
    raise_on_missing_key: bool = True,
    clock: Callable[[], float] | None = None,
) -> Callable[[Callable[_P, _R]], Callable[_P, _R]]:
    """Decorator: a function runs once per key; repeats get the stored result.

    ::

        store = DynamoDBIdempotencyStore("idempotency")

        @idempotent(store=store, key="body.order_id")
        def handler(event, context):             # a handler...
            return charge(json.loads(event["body"]))

        @idempotent(store=store, key="message_id", expires_after=24 * 3600)
        def ship(record):                         # ...or the function of each record
            ...

    Lambda delivers events at least once: a retried invocation, a queue
    message received twice. The key is computed from the function's first
    argument (the event, or a record): ``key`` is a path into it
    (``"body.order_id"``, ``"detail.items[0].sku"``: mapping keys or
    attributes, list indexes; a JSON string met on the way is parsed, as an
    API Gateway body, base64 decoded first when ``isBase64Encoded``), a
    function of it, or None: the id of a record of the `Router`
    (``message_id`` of an `SqsRecord` or `SnsRecord`, ``event_id`` of a
    `DynamoDBRecord` or `KinesisRecord`: the same at each delivery), else
    the whole argument (of an event view or an `S3Record`, what Lambda
    sent: ``raw``).

    Under a `Router` batch route, the decorator goes below the route's::

        @app.sqs("orders")
        @idempotent(store=store, key="message_id")   # SqsRecord.message_id
        def ship(record: SqsRecord) -> None:
            ...

    A record whose duplicate is still running fails with `AlreadyInProgress`
    and is reported in ``batchItemFailures``, so SQS delivers it again later.

    - The first call writes an ``INPROGRESS`` record (a conditional write:
      of two concurrent calls, one wins), runs the function, then stores its
      result (as JSON, through `JsonEncoder`) for ``expires_after`` seconds
      (one hour).
    - A repeat returns the stored result (its JSON value: a dataclass comes
      back as a dict) without running the function.
    - A repeat while the first call runs raises `AlreadyInProgress`: a
      record of a batch fails, and comes again later.
    - When the function raises, the record is deleted and the exception
      raised, so that a retry runs it again.
    - The in-progress record lasts as long as the invocation may (its
      remaining time, from the handler's ``context`` or the current
      invocation's, else ``expires_after``): a call killed by a timeout does
      not block its key for longer. A call that outlives its record, once
      another call has claimed the key, neither deletes nor overwrites that
      call's record (each record carries its call's ``claim_id``).
    - ``payload_validation`` (True for the whole argument, or a path or a
      function, as ``key``): a repeat whose payload differs from the first
      call's under the same key raises `IdempotencyValidationError`. Name
      the part of a queue record that matters (``payload_validation="body"``):
      the whole record holds attributes that change at each delivery
      (``ApproximateReceiveCount``).
    - A missing key (the path leads nowhere, or to an empty value) raises
      `IdempotencyKeyError`; with ``raise_on_missing_key=False`` the
      function runs without idempotency, and a warning is logged (logger
      ``fleece_runtime.idempotency``).

    Keys are SHA-256 digests of the key's JSON, prefixed with the function's
    name (and ``AWS_LAMBDA_FUNCTION_NAME``), so that functions can share a
    table. A result that cannot be written as JSON raises ``TypeError``
    (after the function ran, and the record is deleted). A store that fails
    while saving the result only logs a warning: the function's result is
    returned. ``clock`` (``time.time``) is for tests. ``async def``
    functions are not supported.
    """
    settings = _Idempotency(
        store, key, expires_after, payload_validation, raise_on_missing_key, clock
    )

    def decorate(func: Callable[_P, _R]) -> Callable[_P, _R]:
        import inspect

        if inspect.iscoroutinefunction(func):
            raise TypeError("@idempotent does not support async def functions")
        name = f"{func.__module__}.{func.__qualname__}"
        # The payload passed by keyword: the first parameter's name.
        first = next(iter(inspect.signature(func).parameters), "")

        @functools.wraps(func)
        def once(*args: _P.args, **kwargs: _P.kwargs) -> _R:
            payload = args[0] if args else kwargs.get(first)
            return settings.run(name, func, payload, args, kwargs)

        return once

    return decorate


class AlreadyInProgress(Exception):
    """A call with the same idempotency key is running (or was killed and its
    record has not expired yet): nothing was run. Fail, and let the event
    come again. ``retry_after``: seconds until the running call's record
    expires."""

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class IdempotencyValidationError(ValueError):
    """A repeat carries another payload than the first call under the same key:
    the key is probably too coarse, or the event was altered."""


class IdempotencyKeyError(ValueError):
    """The idempotency key of an event could not be read (see ``key=``)."""


class IdempotencyRecord:
    """What an idempotency store keeps per key.

    ``key``; ``status`` (``"INPROGRESS"`` or ``"COMPLETED"``);
    ``expires_at`` (seconds since the epoch: the record is ignored after it,
    and a DynamoDB TTL deletes it); ``in_progress_until`` (seconds since the
    epoch, for an in-progress record); ``result`` (the JSON text of the
    result, once completed); ``payload_hash`` (with payload validation);
    ``claim_id`` (random, one per call: which call wrote the record, so
    that a call whose in-progress record lapsed never removes or
    overwrites the record of the call that claimed the key after it).
    """

    __slots__ = (
        "claim_id",
        "expires_at",
        "in_progress_until",
        "key",
        "payload_hash",
        "result",
        "status",
    )

    def __init__(
        self,
        key: str,
        status: str,
        expires_at: float,
        in_progress_until: float | None = None,
        result: str | None = None,
        payload_hash: str | None = None,
        claim_id: str | None = None,
    ) -> None:
        self.claim_id = claim_id
        self.key = key
        self.status = status
        self.expires_at = expires_at
        self.in_progress_until = in_progress_until
        self.result = result
        self.payload_hash = payload_hash

    def __repr__(self) -> str:
        return f"<IdempotencyRecord {self.status} {self.key}>"

    def live(self, now: float) -> bool:
        """Whether the record still holds its key at ``now``."""
        if now >= self.expires_at:
            return False
        until = self.in_progress_until
        return self.status == _COMPLETED or until is None or now < until


class IdempotencyStore:
    """Where `idempotent` keeps its records: the protocol a store implements.

    Subclass it, or give any object with these three methods.
    """

    def claim(self, record: IdempotencyRecord, now: float) -> IdempotencyRecord | None:
        """Write the in-progress ``record`` unless a live record holds its key.

        Returns None once written, else the live record (see
        `IdempotencyRecord.live`). Two concurrent claims of one key must not
        both succeed.
        """
        raise NotImplementedError

    def complete(self, record: IdempotencyRecord) -> None:
        """Replace the in-progress record of the same claim (``claim_id``) by
        the completed ``record``; leave the record of another claim."""
        raise NotImplementedError

    def release(self, record: IdempotencyRecord) -> None:
        """Delete ``record``, the in-progress record of a call that raised,
        if it still holds its key (same ``claim_id``); leave another claim's."""
        raise NotImplementedError


class MemoryIdempotencyStore(IdempotencyStore):
    """Records in this process's memory: for tests, and for duplicates that
    reach the same instance (each instance of the function has its own)."""

    def __init__(self) -> None:
        self._records: dict[str, IdempotencyRecord] = {}
        self._lock = threading.Lock()

    def claim(self, record: IdempotencyRecord, now: float) -> IdempotencyRecord | None:
        """Write ``record`` unless a live record holds its key; else return that one."""
        with self._lock:
            current = self._records.get(record.key)
            if current is not None and current.live(now):
                return current
            self._records[record.key] = record
            return None

    def complete(self, record: IdempotencyRecord) -> None:
        """Store the completed ``record`` over the in-progress one of its claim."""
        with self._lock:
            if self._claimed(record):
                self._records[record.key] = record

    def release(self, record: IdempotencyRecord) -> None:
        """Delete the in-progress ``record`` if it still holds its key."""
        with self._lock:
            if self._claimed(record):
                del self._records[record.key]

    def _claimed(self, record: IdempotencyRecord) -> bool:
        """Whether the in-progress record of ``record``'s claim holds its key."""
        current = self._records.get(record.key)
        return (
            current is not None
            and current.status == _IN_PROGRESS
            and current.claim_id == record.claim_id
        )


class DynamoDBIdempotencyStore(IdempotencyStore):
    """Records in a DynamoDB table, shared by every instance of the function.

    One item per key, in the string attribute ``key_attribute`` (the
    table's partition key, ``"id"`` by default), with ``status``,
    ``in_progress_expiration``, ``data`` (the result's JSON),
    ``validation`` and ``claim``; ``ttl_attribute`` (``"expiration"``, epoch seconds) is
    when the record expires: enable TTL on it and DynamoDB deletes old
    records. A claim is a conditional put that succeeds only when no live
    record holds the key, so concurrent duplicates cannot both run; the
    result's put and the delete after a failure are conditional on the
    call's own claim; reads
    are strongly consistent. ``client``: a boto3 DynamoDB client; by
    default one waiting ``timeout`` seconds (2) to connect and read, three
    attempts. The role needs ``dynamodb:PutItem``, ``GetItem`` and
    ``DeleteItem`` on the table.
    """

    def __init__(
        self,
        table_name: str,
        *,
        key_attribute: str = "id",
        ttl_attribute: str = "expiration",
        client: Any = None,
        timeout: float = 2.0,
    ) -> None:
        if not isinstance(table_name, str) or not table_name:
            raise ValueError(
                f"table_name must be a non-empty string, not {table_name!r}"
            )
        self.table_name = table_name
        self.key_attribute = key_attribute
        self.ttl_attribute = ttl_attribute
        self.timeout = _number("timeout", timeout, positive=True)
        self._client = client

    def __repr__(self) -> str:
        return f"<DynamoDBIdempotencyStore {self.table_name!r}>"

    @property
    def client(self) -> Any:
        """The DynamoDB client (created at first use)."""
        if self._client is None:
            self._client = _aws_client("dynamodb", self.timeout, attempts=3)
        return self._client

    def claim(self, record: IdempotencyRecord, now: float) -> IdempotencyRecord | None:
        """A conditional put; the live record that refused it, read back, otherwise."""
        for _ in range(_CLAIM_TRIES):
            try:
                self.client.put_item(
                    TableName=self.table_name,
                    Item=self._item(record),
                    ConditionExpression=(
                        "attribute_not_exists(#key) OR #expires <= :now OR "
                        "(#status = :in_progress AND #until <= :now)"
                    ),
                    ExpressionAttributeNames={
                        "#key": self.key_attribute,
                        "#expires": self.ttl_attribute,
                        "#status": "status",
                        "#until": "in_progress_expiration",
                    },
                    ExpressionAttributeValues={
                        ":now": {"N": f"{now:.3f}"},
                        ":in_progress": {"S": _IN_PROGRESS},
                    },
                    ReturnValuesOnConditionCheckFailure="ALL_OLD",
                )
                return None
            except Exception as error:
                if _error_code(error) != "ConditionalCheckFailedException":
                    raise
                item = getattr(error, "response", {}).get("Item")
            if item is None:
                item = self.client.get_item(
                    TableName=self.table_name,
                    Key={self.key_attribute: {"S": record.key}},
                    ConsistentRead=True,
                ).get("Item")
            if item is not None:
                return self._record(item)
            # Deleted since the put was refused (that call failed): claim again.
        raise RuntimeError(f"the idempotency record {record.key} kept changing")

    def complete(self, record: IdempotencyRecord) -> None:
        """Put the completed ``record`` over the in-progress one of its claim."""
        try:
            self.client.put_item(
                TableName=self.table_name,
                Item=self._item(record),
                **self._own_claim(record),
            )
        except Exception as error:
            if _error_code(error) != "ConditionalCheckFailedException":
                raise

    def release(self, record: IdempotencyRecord) -> None:
        """Delete the in-progress ``record`` if it still holds its key."""
        try:
            self.client.delete_item(
                TableName=self.table_name,
                Key={self.key_attribute: {"S": record.key}},
                **self._own_claim(record),
            )
        except Exception as error:
            if _error_code(error) != "ConditionalCheckFailedException":
                raise

    @staticmethod
    def _own_claim(record: IdempotencyRecord) -> dict[str, Any]:
        """The condition of a write: the in-progress item of ``record``'s claim."""
        return {
            "ConditionExpression": "#status = :in_progress AND #claim = :claim",
            "ExpressionAttributeNames": {"#status": "status", "#claim": "claim"},
            "ExpressionAttributeValues": {
                ":in_progress": {"S": _IN_PROGRESS},
                ":claim": {"S": record.claim_id or ""},
            },
        }

    def _item(self, record: IdempotencyRecord) -> dict[str, Any]:
        item: dict[str, Any] = {
            self.key_attribute: {"S": record.key},
            "status": {"S": record.status},
            self.ttl_attribute: {"N": str(int(record.expires_at))},
        }
        if record.in_progress_until is not None:
            item["in_progress_expiration"] = {"N": f"{record.in_progress_until:.3f}"}
        if record.result is not None:
            item["data"] = {"S": record.result}
        if record.payload_hash is not None:
            item["validation"] = {"S": record.payload_hash}
        if record.claim_id is not None:
            item["claim"] = {"S": record.claim_id}
        return item

    def _record(self, item: Mapping[str, Any]) -> IdempotencyRecord:
        def text(attribute: str) -> str | None:
            value = item.get(attribute)
            return value["S"] if value else None

        until = item.get("in_progress_expiration")
        return IdempotencyRecord(
            item[self.key_attribute]["S"],
            item["status"]["S"],
            float(item[self.ttl_attribute]["N"]),
            float(until["N"]) if until else None,
            text("data"),
            text("validation"),
            text("claim"),
        )


class _Idempotency:
    """The settings of one `idempotent` decorator, and what a call does with them."""

    def __init__(
        self,
        store: IdempotencyStore,
        key: str | Callable[[Any], Any] | None,
        expires_after: float,
        payload_validation: bool | str | Callable[[Any], Any],
        raise_on_missing_key: bool,
        clock: Callable[[], float] | None,
    ) -> None:
        if not all(
            callable(getattr(store, method, None))
            for method in ("claim", "complete", "release")
        ):
            raise TypeError(f"store must be an IdempotencyStore, not {store!r}")
        self.store = store
        self.key = _payload_reader("key", key)
        self.expires_after = _number("expires_after", expires_after, positive=True)
        self.validation = (
            None
            if payload_validation is False
            else _payload_reader(
                "payload_validation",
                None if payload_validation is True else payload_validation,
            )
        )
        self.raise_on_missing_key = raise_on_missing_key
        self.clock = clock or time.time

    def run(
        self,
        name: str,
        func: Callable[..., _R],
        payload: Any,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> _R:
        key = self._record_key(name, payload)
        if key is None:
            return func(*args, **kwargs)
        payload_hash = None
        if self.validation is not None:
            payload_hash = _digest(self.validation(payload), "payload_validation")
        now = self.clock()
        expires_at = now + self.expires_after
        claim = IdempotencyRecord(
            key,
            _IN_PROGRESS,
            expires_at,
            now + self._running_time(args, kwargs),
            None,
            payload_hash,
            os.urandom(16).hex(),
        )
        existing = self.store.claim(claim, now)
        if existing is not None:
            repeated: _R = self._repeat(existing, payload_hash, now)
            return repeated
        try:
            result = func(*args, **kwargs)
        except BaseException:
            self._release(claim)
            raise
        try:
            stored = json_dumps(result)
        except (TypeError, ValueError) as error:
            self._release(claim)
            raise TypeError(
                f"the result of {name} cannot be stored as JSON for idempotency: {error}"
            ) from None
        done = IdempotencyRecord(
            key, _COMPLETED, expires_at, None, stored, payload_hash, claim.claim_id
        )
        try:
            self.store.complete(done)
        except Exception as error:  # noqa: BLE001 (the function ran: return its result)
            get_logger("fleece_runtime.idempotency").warning(
                "Idempotency result not stored: a repeat runs again once the "
                "in-progress record expires",
                function=name,
                error=f"{type(error).__name__}: {error}"[:300],
            )
        return result

    def _record_key(self, name: str, payload: Any) -> str | None:
        value = self.key(payload)
        if value is None or value in ("", [], {}):
            if self.raise_on_missing_key:
                raise IdempotencyKeyError(
                    f"no idempotency key in the payload of {name}: check key="
                )
            get_logger("fleece_runtime.idempotency").warning(
                "No idempotency key: the function runs without idempotency",
                function=name,
            )
            return None
        function = os.environ.get("AWS_LAMBDA_FUNCTION_NAME")
        prefix = f"{function}.{name}" if function else name
        return f"{prefix}#{_digest(value, 'key')}"

    def _running_time(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> float:
        """Seconds the invocation may still run: the in-progress record's life."""
        _, context = _event_and_context(args, kwargs)
        remaining = getattr(context, "get_remaining_time_in_millis", None)
        if not callable(remaining):
            remaining = getattr(
                current_lambda_context(), "get_remaining_time_in_millis", None
            )
        if callable(remaining):
            return max(0.0, min(float(remaining()) / 1000, self.expires_after))
        return self.expires_after

    def _repeat(
        self, existing: IdempotencyRecord, payload_hash: str | None, now: float
    ) -> Any:
        """The answer to a repeat: the stored result, or why there is none."""
        if self.validation is not None and existing.payload_hash != payload_hash:
            raise IdempotencyValidationError(
                "the payload differs from the first call's under the same idempotency key"
            )
        if existing.status == _COMPLETED:
            return None if existing.result is None else json.loads(existing.result)
        until = existing.in_progress_until or existing.expires_at
        raise AlreadyInProgress(
            f"a call with the same idempotency key is in progress "
            f"(its record expires in {max(0.0, until - now):.0f} s)",
            max(0.0, until - now),
        )

    def _release(self, claim: IdempotencyRecord) -> None:
        try:
            self.store.release(claim)
        except Exception as error:  # noqa: BLE001 (the function's own error goes first)
            get_logger("fleece_runtime.idempotency").warning(
                "Idempotency record not deleted: a retry waits until it expires",
                error=f"{type(error).__name__}: {error}"[:300],
            )


def _payload_reader(
    what: str, given: str | Callable[[Any], Any] | None
) -> Callable[[Any], Any]:
    """A function reading the key (or the validated part) of a payload."""
    if given is None:
        return _record_id if what == "key" else _whole_payload
    if callable(given):
        return given
    if isinstance(given, str):
        return functools.partial(_path_value, _path_parts(given, what))
    raise TypeError(f"{what} must be a path, a function or None, not {given!r}")


def _record_id(payload: Any) -> Any:
    """The default key: a record's own id, the same at each delivery (an SQS
    record's ``raw`` is not: ``receiptHandle``, ``ApproximateReceiveCount``);
    for other payloads the whole of them."""
    if isinstance(payload, SqsRecord | SnsRecord):
        return payload.message_id
    if isinstance(payload, DynamoDBRecord | KinesisRecord):
        return payload.event_id
    return _whole_payload(payload)


def _whole_payload(payload: Any) -> Any:
    """The payload itself; for an event view or a record (`SqsRecord`...), what Lambda sent."""
    if isinstance(
        payload,
        Event | S3Record | SqsRecord | SnsRecord | DynamoDBRecord | KinesisRecord,
    ):
        return payload.raw
    return payload


def _path_parts(path: str, what: str) -> tuple[str | int, ...]:
    """``"body.items[0].sku"`` as ``("body", "items", 0, "sku")``."""
    parts: list[str | int] = []
    for segment in path.split("."):
        name, bracket, indexes = segment.partition("[")
        if not name or name.startswith("_"):
            raise ValueError(f"{what}={path!r} is not a path like 'body.items[0].sku'")
        parts.append(name)
        if bracket:
            for index in ("[" + indexes).split("[")[1:]:
                number = index[:-1]
                if not index.endswith("]") or not number.lstrip("-").isdigit():
                    raise ValueError(
                        f"{what}={path!r} is not a path like 'body.items[0].sku'"
                    )
                parts.append(int(number))
    return tuple(parts)


_JSON_STARTS = ("{", "[", b"{", b"[")


def _path_value(parts: tuple[str | int, ...], value: Any) -> Any:
    """What the path leads to in ``value``, or None."""
    for part in parts:
        if isinstance(value, str | bytes) and value.lstrip()[:1] in _JSON_STARTS:
            try:
                value = json.loads(value)
            except ValueError:
                return None
        if isinstance(part, int):
            value = (
                value[part]
                if isinstance(value, list) and -len(value) <= part < len(value)
                else None
            )
        elif isinstance(value, Mapping):
            encoded = part == "body" and value.get("isBase64Encoded") is True
            value = value.get(part)
            if encoded and isinstance(value, str):  # an API Gateway binary body
                import binascii

                try:
                    value = binascii.a2b_base64(value, strict_mode=True)
                except (binascii.Error, ValueError):
                    return None
        else:
            try:
                value = getattr(value, part, None)
            except ValueError:  # a record's json of a body that is not JSON
                return None
        if value is None:
            return None
    return value


def _digest(value: Any, what: str) -> str:
    """The SHA-256 of ``value``'s canonical JSON (keys sorted, no spaces)."""
    import hashlib

    try:
        text = _canonical_encoder().encode(value)
    except (TypeError, ValueError) as error:
        raise IdempotencyKeyError(
            f"the {what} cannot be written as JSON ({error}): give {what}= a path "
            f"or a function"
        ) from None
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@functools.cache
def _canonical_encoder() -> JsonEncoder:
    return JsonEncoder(
        sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )
