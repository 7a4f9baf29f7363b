"""HttpClient's SigV4 signatures, checked against botocore's own SigV4Auth."""

import io
import socket
from datetime import datetime
from typing import Any

import botocore.auth
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from runtime_stub import fleece_runtime as runtime
from tests.runtime.outbound_servers import events
from tests.runtime.runtime_servers import HttpServer

CREDENTIALS = Credentials(
    "AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "tok"
)
# Headers botocore sets while signing, and those the HTTP layer adds after.
SIGNATURE_HEADERS = ("Authorization", "X-Amz-Date", "X-Amz-Security-Token")
WIRE_HEADERS = ("Content-Length",)


def botocore_signature(
    request: dict[str, Any], url: str, service: str, region: str
) -> dict[str, str]:
    """botocore's SigV4Auth headers for a request as the server received it."""
    headers = {
        name: value
        for name, value in request["headers"].items()
        if name not in SIGNATURE_HEADERS + WIRE_HEADERS
    }
    when = datetime.strptime(request["headers"]["X-Amz-Date"], "%Y%m%dT%H%M%SZ")
    aws_request = AWSRequest(
        method=request["method"],
        url=f"{url}{request['path']}",
        data=request["body"],
        headers=headers,
    )
    saved = botocore.auth.get_current_datetime
    botocore.auth.get_current_datetime = lambda *args, **kwargs: when
    try:
        SigV4Auth(CREDENTIALS, service, region).add_auth(aws_request)
    finally:
        botocore.auth.get_current_datetime = saved
    return {name: aws_request.headers[name] for name in SIGNATURE_HEADERS}


@pytest.fixture
def aws_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Credentials and region in the environment only (no files, no metadata service)."""
    for name in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDENV")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret-from-env")
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent/fleece-test-aws-config")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/fleece-test-creds")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


@pytest.fixture
def api_gateway_host(http_server: HttpServer, monkeypatch: pytest.MonkeyPatch) -> str:
    """An API Gateway host name that resolves to the test server (DNS is the boundary)."""
    host = "abc123.execute-api.eu-west-2.amazonaws.com"
    resolve = socket.getaddrinfo

    def local(name: Any, *args: Any, **kwargs: Any) -> Any:
        return resolve("127.0.0.1" if name == host else name, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", local)
    return f"http://{host}:{http_server.url.rsplit(':', 1)[1]}"


def scope(request: dict[str, Any]) -> str:
    """The credential scope of a signed request without its date: region/service/aws4_request."""
    credential: str = request["headers"]["Authorization"].split("Credential=")[1]
    return credential.split(",")[0].split("/", 2)[2]


def test_the_signature_is_botocore_s_for_the_same_request_time_and_credentials(
    http_server: HttpServer,
) -> None:
    client = runtime.HttpClient(
        http_server.url, sign="execute-api", region="eu-west-1", credentials=CREDENTIALS
    )

    client.post(
        "/prod/orders/a%20b",
        params={"z": "1", "a": "x y/z", "email": "ann+1@example.com"},
        headers={"X-Team": "orders"},
        json={"order": 7, "note": "Åsa"},
    )

    [request] = http_server.exchange.requests
    expected = botocore_signature(request, http_server.url, "execute-api", "eu-west-1")
    assert {name: request["headers"][name] for name in SIGNATURE_HEADERS} == expected
    assert "x-team" in request["headers"]["Authorization"]


def test_each_retry_is_signed_again(http_server: HttpServer) -> None:
    http_server.responder = lambda n, request: (503 if n == 1 else 200, {}, b"")
    client = runtime.HttpClient(
        sign="lambda", region="eu-west-1", credentials=CREDENTIALS, backoff=0.01
    )

    assert client.get(f"{http_server.url}/fn?x=1").status == 200

    for request in http_server.exchange.requests:
        expected = botocore_signature(request, http_server.url, "lambda", "eu-west-1")
        assert request["headers"]["Authorization"] == expected["Authorization"]


@pytest.mark.usefixtures("aws_environment")
def test_api_gateway_hosts_are_signed_with_the_region_of_their_name(
    http_server: HttpServer, api_gateway_host: str
) -> None:
    runtime.HttpClient().get(f"{api_gateway_host}/prod/orders")

    [request] = http_server.exchange.requests
    assert scope(request) == "eu-west-2/execute-api/aws4_request"
    assert "Credential=AKIDENV/" in request["headers"]["Authorization"]
    assert "X-Amz-Security-Token" not in request["headers"]


@pytest.mark.usefixtures("aws_environment")
def test_sign_false_never_signs(http_server: HttpServer, api_gateway_host: str) -> None:
    runtime.HttpClient(sign=False).get(f"{api_gateway_host}/prod/orders")

    assert "Authorization" not in http_server.exchange.requests[0]["headers"]


@pytest.mark.usefixtures("aws_environment")
def test_other_hosts_are_not_signed_unless_asked(http_server: HttpServer) -> None:
    runtime.HttpClient().get(http_server.url)
    runtime.HttpClient(sign="es").get(http_server.url)

    plain, signed = http_server.exchange.requests
    assert "Authorization" not in plain["headers"]
    assert scope(signed) == "us-east-1/es/aws4_request"


@pytest.mark.usefixtures("aws_environment")
def test_a_session_token_is_sent_and_signed(
    http_server: HttpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_SESSION_TOKEN", "session-tok")

    runtime.HttpClient(sign=True).get(http_server.url)

    headers = http_server.exchange.requests[0]["headers"]
    assert headers["X-Amz-Security-Token"] == "session-tok"
    assert "x-amz-security-token" in headers["Authorization"]


@pytest.mark.usefixtures("aws_environment")
def test_missing_credentials_fail_before_anything_is_sent(
    http_server: HttpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    for name in (
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
    ):
        monkeypatch.delenv(name, raising=False)

    with pytest.raises(RuntimeError, match="no AWS credentials to sign"):
        runtime.HttpClient(sign="execute-api").get(f"{http_server.url}/x?token=t0k")

    assert http_server.attempts == 0


@pytest.mark.usefixtures("aws_environment")
def test_a_missing_region_fails_before_anything_is_sent(
    http_server: HttpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AWS_REGION")

    with pytest.raises(ValueError, match="no AWS region to sign"):
        runtime.HttpClient(sign="execute-api").get(http_server.url)

    assert http_server.attempts == 0


def test_signature_headers_are_masked_in_log_lines(
    http_server: HttpServer, stream: io.StringIO
) -> None:
    http_server.responder = lambda n, request: (503 if n == 1 else 200, {}, b"")
    logger = runtime.get_logger("fleece_runtime.http")
    logger.setLevel("DEBUG")
    try:
        runtime.HttpClient(
            sign="execute-api", region="eu-west-1", credentials=CREDENTIALS, backoff=0
        ).get(http_server.url)
    finally:
        logger.setLevel("NOTSET")

    sent = http_server.exchange.requests[-1]["headers"]
    signature = sent["Authorization"].rsplit("Signature=", 1)[1]
    text = stream.getvalue()
    assert signature not in text and CREDENTIALS.secret_key not in text
    assert events(stream, "Retrying HTTP request")
