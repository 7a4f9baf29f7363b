"""Child of run.py: microseconds a router adds to one API Gateway invocation.

Usage: python router_overhead.py PEER KIND ROUTES CALLS REPEATS

PEER is ``fleece`` (fleece_runtime's Router, the handler not decorated:
``resolve`` sets up the invocation's log context), ``fleece-decorated``
(inside an invocation already set up, as in a handler decorated with
``inject_request_ids_into_environment``: the routing alone), ``fleece-log``
(one request line logged per call, to /dev/null) or ``powertools``
(Powertools' APIGatewayRestResolver for KIND ``rest``, its
APIGatewayHttpResolver for ``http``). The app has ROUTES routes
``GET /resource{i}/{id}``, each returning a small dict; the event (a REST or
HTTP API request as API Gateway sends it) asks for the middle one. Prints
``{"overhead_us": [...]}``: per repeat, the best per-call time of CALLS calls
of ``resolve(event, context)``, minus that of calling the route's function
directly. Peers are imported by name, so this file runs in either venv.
"""

import importlib
import json
import os
import sys
import time
from collections.abc import Callable
from typing import Any

REST_EVENT: dict[str, Any] = {
    "resource": "/{proxy+}",
    "path": "/resource{i}/o-123",
    "httpMethod": "GET",
    "headers": {
        "Accept": "application/json",
        "Host": "abcdef1234.execute-api.us-east-1.amazonaws.com",
        "User-Agent": "curl/8.5.0",
        "X-Amzn-Trace-Id": "Root=1-67891233-abcdef012345678912345678",
        "X-Forwarded-For": "203.0.113.10",
        "X-Forwarded-Port": "443",
        "X-Forwarded-Proto": "https",
    },
    "multiValueHeaders": {
        "Accept": ["application/json"],
        "Host": ["abcdef1234.execute-api.us-east-1.amazonaws.com"],
        "User-Agent": ["curl/8.5.0"],
        "X-Amzn-Trace-Id": ["Root=1-67891233-abcdef012345678912345678"],
        "X-Forwarded-For": ["203.0.113.10"],
        "X-Forwarded-Port": ["443"],
        "X-Forwarded-Proto": ["https"],
    },
    "queryStringParameters": {"verbose": "1"},
    "multiValueQueryStringParameters": {"verbose": ["1"]},
    "pathParameters": {"proxy": "resource{i}/o-123"},
    "stageVariables": None,
    "requestContext": {
        "resourceId": "2gxmpl",
        "resourcePath": "/{proxy+}",
        "httpMethod": "GET",
        "extendedRequestId": "JJbxmHc8IAMFpXA=",
        "requestTime": "10/Mar/2025:00:03:59 +0000",
        "path": "/prod/resource{i}/o-123",
        "accountId": "123456789012",
        "protocol": "HTTP/1.1",
        "stage": "prod",
        "domainPrefix": "abcdef1234",
        "requestTimeEpoch": 1741565039000,
        "requestId": "c6af9ac6-7b61-11e6-9a41-93e8deadbeef",
        "identity": {"sourceIp": "203.0.113.10", "userAgent": "curl/8.5.0"},
        "domainName": "abcdef1234.execute-api.us-east-1.amazonaws.com",
        "apiId": "abcdef1234",
    },
    "body": None,
    "isBase64Encoded": False,
}

HTTP_EVENT: dict[str, Any] = {
    "version": "2.0",
    "routeKey": "ANY /{proxy+}",
    "rawPath": "/resource{i}/o-123",
    "rawQueryString": "verbose=1",
    "headers": {
        "accept": "application/json",
        "host": "r3pmxmplak.execute-api.us-east-1.amazonaws.com",
        "user-agent": "curl/8.5.0",
        "x-amzn-trace-id": "Root=1-5e6722a7-cc56xmpl46db7ae02d4da47e",
        "x-forwarded-for": "203.0.113.10",
        "x-forwarded-port": "443",
        "x-forwarded-proto": "https",
    },
    "queryStringParameters": {"verbose": "1"},
    "pathParameters": {"proxy": "resource{i}/o-123"},
    "requestContext": {
        "accountId": "123456789012",
        "apiId": "r3pmxmplak",
        "domainName": "r3pmxmplak.execute-api.us-east-1.amazonaws.com",
        "domainPrefix": "r3pmxmplak",
        "http": {
            "method": "GET",
            "path": "/resource{i}/o-123",
            "protocol": "HTTP/1.1",
            "sourceIp": "203.0.113.10",
            "userAgent": "curl/8.5.0",
        },
        "requestId": "JKJaXmPLvHcESHA=",
        "routeKey": "ANY /{proxy+}",
        "stage": "$default",
        "time": "10/Mar/2025:05:16:23 +0000",
        "timeEpoch": 1741583783015,
    },
    "isBase64Encoded": False,
}


class Context:
    """The attributes of Lambda's context object."""

    function_name = "bench"
    function_version = "$LATEST"
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:bench"
    memory_limit_in_mb = "256"
    aws_request_id = "8f5c9a36-2b3e-4f7d-9d1a-0c6f1e2d3b4a"
    log_group_name = "/aws/lambda/bench"
    log_stream_name = "2025/03/10/[$LATEST]0123456789abcdef"

    def get_remaining_time_in_millis(self) -> int:
        return 30_000


def route_function(i: int) -> Callable[[str], dict[str, Any]]:
    def get(id: str) -> dict[str, Any]:
        return {"resource": i, "id": id}

    return get


def fleece_app(routes: int, log_requests: bool) -> Any:
    runtime: Any = importlib.import_module("fleece_runtime")
    if log_requests:
        runtime.setup_root_logger(stream=open(os.devnull, "w"))  # noqa: SIM115
    app = runtime.Router(log_requests=log_requests)
    for i in range(routes):
        app.get(f"/resource{i}/{{id}}")(route_function(i))
    return app


def powertools_app(routes: int, kind: str) -> Any:
    handler: Any = importlib.import_module("aws_lambda_powertools.event_handler")
    resolver = (
        handler.APIGatewayRestResolver
        if kind == "rest"
        else handler.APIGatewayHttpResolver
    )
    app = resolver()
    for i in range(routes):
        app.get(f"/resource{i}/<id>")(route_function(i))
    return app


def event_for(kind: str, target: int) -> dict[str, Any]:
    template = REST_EVENT if kind == "rest" else HTTP_EVENT
    event: dict[str, Any] = json.loads(json.dumps(template).replace("{i}", str(target)))
    return event


def best_per_call(call: Callable[[], object], calls: int) -> float:
    """Seconds per call of the fastest of three batches of ``calls``."""
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        for _ in range(calls):
            call()
        best = min(best, (time.perf_counter() - started) / calls)
    return best


def main() -> None:
    peer, kind, routes, calls, repeats = (
        sys.argv[1],
        sys.argv[2],
        *map(int, sys.argv[3:6]),
    )
    if peer == "powertools":
        app = powertools_app(routes, kind)
    else:
        app = fleece_app(routes, log_requests=peer == "fleece-log")
    target = routes // 2
    event = event_for(kind, target)
    context = Context()
    result = app.resolve(event, context)
    if result["statusCode"] != 200 or json.loads(result["body"]) != {
        "resource": target,
        "id": "o-123",
    }:
        raise SystemExit(f"{peer} answered {result!r}")
    direct = route_function(target)
    if peer == "fleece-decorated":
        runtime: Any = importlib.import_module("fleece_runtime")
        runtime.lambda_invocation(context).__enter__()
    overheads = []
    for _ in range(repeats):
        routed = best_per_call(lambda: app.resolve(event, context), calls)
        bare = best_per_call(lambda: direct("o-123"), calls)
        overheads.append((routed - bare) * 1e6)
    print(json.dumps({"overhead_us": overheads}))


if __name__ == "__main__":
    main()
