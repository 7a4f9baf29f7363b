"""fleece_runtime.ClientCredentialsToken against a token endpoint on 127.0.0.1."""

import base64
import io
import json
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs

import boto3
import pytest

from runtime_stub import fleece_runtime as runtime
from tests.runtime.jwt_keys import RsaSigner, rsa_signer, sign
from tests.runtime.outbound_servers import closed_port, events, lines
from tests.runtime.runtime_servers import HttpServer
from tests.servers import pause

SECRET = "s3cr3t-Pa$$word"
START = 1_700_000_000.0


class Clock:
    """Seconds since the epoch, moved by the test."""

    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> float:
        return self.now


class Endpoint:
    """A token endpoint: hands out numbered tokens, or the answer the test sets."""

    def __init__(self, server: HttpServer) -> None:
        self.server = server
        self.url = f"{server.url}/oauth2/token"
        self.expires_in: int | None = 3600
        self.failure: tuple[int, dict[str, Any]] | None = None
        self.delay = 0.0
        self.held: threading.Event | None = None  # answers wait until it is set
        self.make_token: Callable[[int], str] = lambda number: f"opaque-token-{number}"
        server.responder = self.answer

    def answer(
        self, number: int, request: BaseHTTPRequestHandler
    ) -> tuple[int, dict[str, str], bytes]:
        pause(request, self.delay)
        if self.held is not None:
            self.held.wait(10)
        json_type = {"Content-Type": "application/json"}
        if self.failure is not None:
            status, body = self.failure
            return status, json_type, json.dumps(body).encode()
        answer: dict[str, Any] = {
            "access_token": self.make_token(number),
            "token_type": "Bearer",
        }
        if self.expires_in is not None:
            answer["expires_in"] = self.expires_in
        return 200, json_type, json.dumps(answer).encode()

    @property
    def requests(self) -> list[dict[str, Any]]:
        return self.server.exchange.requests

    def form(self, index: int = 0) -> dict[str, list[str]]:
        return parse_qs(self.requests[index]["body"].decode())


class DictStore:
    """A token store in a dict (metis-app's protocol: read and write)."""

    def __init__(self) -> None:
        self.values: dict[str, str] = {}
        self.writes = 0

    def read(self, key: str) -> str | None:
        return self.values.get(key)

    def write(self, key: str, value: str) -> None:
        self.writes += 1
        self.values[key] = value


class BrokenStore:
    def read(self, key: str) -> str | None:
        raise ConnectionError("store down")

    def write(self, key: str, value: str) -> None:
        raise ConnectionError("store down")


@pytest.fixture
def endpoint(http_server: HttpServer) -> Endpoint:
    return Endpoint(http_server)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture(scope="module")
def issuer_key() -> RsaSigner:
    return rsa_signer("issuer")


def token_of(
    endpoint: Endpoint, clock: Clock, **options: Any
) -> runtime.ClientCredentialsToken:
    settings: dict[str, Any] = {
        "client_id": "orders",
        "client_secret": SECRET,
        "clock": clock,
    }
    settings.update(options)
    return runtime.ClientCredentialsToken(endpoint.url, **settings)


def jwt_issuer(signer: RsaSigner, clock: Clock, lifetime: int = 3600) -> Any:
    return lambda number: sign(
        signer,
        {
            "sub": "orders",
            "iat": int(clock.now),
            "exp": int(clock.now) + lifetime,
            "n": number,
        },
    )


# -- the request ----------------------------------------------------------------


def test_a_token_is_requested_with_basic_authentication(
    endpoint: Endpoint, clock: Clock
) -> None:
    token = token_of(
        endpoint, clock, scope=["orders/read", "orders/write"], audience="api"
    )

    assert token.token() == "opaque-token-1"
    (request,) = endpoint.requests
    assert request["method"] == "POST"
    assert request["path"] == "/oauth2/token"
    assert request["headers"]["Content-Type"] == "application/x-www-form-urlencoded"
    scheme, _, encoded = request["headers"]["Authorization"].partition(" ")
    assert scheme == "Basic"
    assert base64.b64decode(encoded).decode() == "orders:s3cr3t-Pa%24%24word"
    assert endpoint.form() == {
        "grant_type": ["client_credentials"],
        "scope": ["orders/read orders/write"],
        "audience": ["api"],
    }


def test_credentials_go_in_the_body_with_auth_body(
    endpoint: Endpoint, clock: Clock
) -> None:
    token_of(endpoint, clock, auth="body").token()

    assert "Authorization" not in endpoint.requests[0]["headers"]
    assert endpoint.form() == {
        "grant_type": ["client_credentials"],
        "client_id": ["orders"],
        "client_secret": [SECRET],
    }


def test_credentials_come_from_environment_variables(
    endpoint: Endpoint, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLEECE_OAUTH_CLIENT_ID", "from-env")
    monkeypatch.setenv("FLEECE_OAUTH_CLIENT_SECRET", "env-secret")

    runtime.ClientCredentialsToken(endpoint.url, clock=clock, auth="body").token()

    assert endpoint.form()["client_id"] == ["from-env"]
    assert endpoint.form()["client_secret"] == ["env-secret"]


def test_missing_credentials_name_the_variable(
    endpoint: Endpoint, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("FLEECE_OAUTH_CLIENT_SECRET", raising=False)
    token = runtime.ClientCredentialsToken(
        endpoint.url, client_id="orders", clock=clock
    )

    with pytest.raises(runtime.TokenError, match="FLEECE_OAUTH_CLIENT_SECRET"):
        token.token()
    assert endpoint.requests == []


def test_credentials_come_from_ssm_and_secrets_manager(
    aws: str, endpoint: Endpoint, clock: Clock
) -> None:
    boto3.client("ssm").put_parameter(
        Name="/orders/client-id", Value="ssm-id", Type="String"
    )
    boto3.client("secretsmanager").create_secret(
        Name="orders/client-secret", SecretString=SECRET
    )
    token = runtime.ClientCredentialsToken(
        endpoint.url,
        client_id=lambda: runtime.get_parameter("/orders/client-id"),
        client_secret=lambda: runtime.get_secret("orders/client-secret"),
        auth="body",
        clock=clock,
    )

    token.token()

    assert endpoint.form()["client_id"] == ["ssm-id"]
    assert endpoint.form()["client_secret"] == [SECRET]


def test_a_credential_source_that_fails_raises_token_error_naming_its_type(
    endpoint: Endpoint, clock: Clock
) -> None:
    def unreadable() -> str:
        raise RuntimeError(f"could not decrypt {SECRET}")

    token = token_of(endpoint, clock, client_secret=unreadable)

    with pytest.raises(runtime.TokenError) as raised:
        token.token()
    assert (
        str(raised.value) == "the OAuth client_secret could not be read (RuntimeError)"
    )
    assert endpoint.requests == []


def test_a_failing_credential_source_during_a_refresh_keeps_the_old_token(
    endpoint: Endpoint, clock: Clock
) -> None:
    available = [True]

    def secret() -> str:
        if not available[0]:
            raise ConnectionError("SSM unreachable")
        return SECRET

    token = token_of(endpoint, clock, client_secret=secret)
    first = token.token()
    available[0] = False
    clock.now += 3600 - 30

    assert token.token() == first


# -- holding and refreshing -------------------------------------------------------


def test_the_token_is_held_until_its_refresh_window(
    endpoint: Endpoint, clock: Clock
) -> None:
    token = token_of(endpoint, clock)
    first = token.token()
    clock.now += 3600 - 301

    assert token.token() == first
    assert len(endpoint.requests) == 1


def test_the_token_is_refreshed_inside_the_window_before_it_expires(
    endpoint: Endpoint, clock: Clock
) -> None:
    token = token_of(endpoint, clock)
    token.token()
    clock.now += 3600 - 59

    assert token.token() == "opaque-token-2"
    assert len(endpoint.requests) == 2


def test_instances_spread_their_refreshes_over_the_window(
    endpoint: Endpoint, clock: Clock
) -> None:
    instances = [token_of(endpoint, clock) for _ in range(20)]
    first = [instance.token() for instance in instances]
    refreshed_at: dict[int, int] = {}
    for second in range(3600 - 400, 3600):
        clock.now = START + second
        for number, instance in enumerate(instances):
            if number not in refreshed_at and instance.token() != first[number]:
                refreshed_at[number] = second

    assert len(refreshed_at) == len(instances)
    assert all(3600 - 300 <= second <= 3600 - 60 for second in refreshed_at.values())
    assert len(set(refreshed_at.values())) > 10


def test_a_short_lived_token_is_refreshed_in_the_second_half_of_its_life(
    endpoint: Endpoint, clock: Clock
) -> None:
    endpoint.expires_in = 120
    token = token_of(endpoint, clock)
    token.token()
    clock.now += 59

    token.token()
    assert len(endpoint.requests) == 1
    clock.now += 2
    token.token()
    assert len(endpoint.requests) == 2


def test_a_token_shorter_lived_than_twice_the_margin_is_not_handed_out_in_it(
    endpoint: Endpoint, clock: Clock
) -> None:
    endpoint.expires_in = 12  # usable for 2 s: 10 s before expiry it is not
    token = token_of(endpoint, clock)
    assert token.token() == "opaque-token-1"

    clock.now += 2.5

    assert token.token() == "opaque-token-2"


def test_concurrent_threads_hit_the_endpoint_once(
    endpoint: Endpoint, clock: Clock
) -> None:
    endpoint.delay = 0.3
    token = token_of(endpoint, clock)
    results: list[str] = []
    start = threading.Barrier(10)

    def ask() -> None:
        start.wait()
        results.append(token.token())

    threads = [threading.Thread(target=ask) for _ in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert results == ["opaque-token-1"] * 10
    assert len(endpoint.requests) == 1


def test_threads_keep_the_current_token_while_one_refreshes_it(
    endpoint: Endpoint, clock: Clock
) -> None:
    token = token_of(endpoint, clock)
    token.token()
    clock.now += 3600 - 30
    endpoint.held = threading.Event()
    refresher = threading.Thread(target=token.token)
    refresher.start()
    try:
        for _ in range(500):  # until the refresh is in flight
            if endpoint.server.attempts == 2:
                break
            time.sleep(0.01)
        assert endpoint.server.attempts == 2

        started = time.monotonic()
        current = token.token()  # waiting for the held refresh would take 10 s
        waited = time.monotonic() - started
    finally:
        endpoint.held.set()
        refresher.join()

    assert current == "opaque-token-1"
    assert waited < 2
    assert token.token() == "opaque-token-2"


def test_a_failed_refresh_serves_the_old_token_until_it_expires(
    endpoint: Endpoint, clock: Clock, stream: io.StringIO
) -> None:
    token = token_of(endpoint, clock)
    token.token()
    endpoint.failure = (503, {"error": "temporarily_unavailable"})
    clock.now += 3600 - 30

    assert token.token() == "opaque-token-1"
    (warning,) = events(
        stream, "Token refresh failed: the current token is served until it expires"
    )
    assert warning["expires_in"] == 30.0
    clock.now += 25
    with pytest.raises(
        runtime.TokenError, match="answered 503 temporarily_unavailable"
    ):
        token.token()


def test_a_failed_refresh_is_tried_again_after_five_seconds(
    endpoint: Endpoint, clock: Clock
) -> None:
    token = token_of(endpoint, clock, client=runtime.HttpClient(retries=0))
    token.token()
    endpoint.failure = (500, {})
    clock.now += 3600 - 20  # past any refresh moment, 10 s before the token's end
    token.token()
    attempts = len(endpoint.requests)
    assert attempts == 2

    clock.now += 4
    token.token()
    assert len(endpoint.requests) == attempts
    clock.now += 2
    endpoint.failure = None
    assert token.token() == f"opaque-token-{attempts + 1}"


def test_without_a_token_a_failed_request_is_not_repeated_for_five_seconds(
    endpoint: Endpoint, clock: Clock
) -> None:
    token = token_of(endpoint, clock, client=runtime.HttpClient(retries=0))
    endpoint.failure = (503, {"error": "temporarily_unavailable"})
    for _ in range(5):
        with pytest.raises(runtime.TokenError, match="answered 503"):
            token.token()
        clock.now += 0.9
    assert len(endpoint.requests) == 1

    clock.now += 1
    endpoint.failure = None

    assert token.token() == "opaque-token-2"


def test_threads_waiting_for_a_failed_request_get_its_error(
    endpoint: Endpoint, clock: Clock
) -> None:
    token = token_of(endpoint, clock, client=runtime.HttpClient(retries=0))
    endpoint.failure = (500, {})
    endpoint.delay = 0.3
    errors: list[str] = []
    start = threading.Barrier(5)

    def ask() -> None:
        start.wait()
        try:
            token.token()
        except runtime.TokenError as error:
            errors.append(str(error))

    threads = [threading.Thread(target=ask) for _ in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(errors) == 5
    assert len(set(errors)) == 1
    assert len(endpoint.requests) == 1


def test_invalidate_forgets_the_token(endpoint: Endpoint, clock: Clock) -> None:
    token = token_of(endpoint, clock)
    token.token()

    token.invalidate()

    assert token.token() == "opaque-token-2"


def test_without_expires_in_the_jwt_exp_is_used(
    endpoint: Endpoint, clock: Clock, issuer_key: RsaSigner
) -> None:
    endpoint.expires_in = None
    endpoint.make_token = jwt_issuer(issuer_key, clock, lifetime=900)
    token = token_of(endpoint, clock)
    first = token.token()

    clock.now += 900 - 301
    assert token.token() == first
    clock.now += 300
    assert token.token() != first


# -- the store ----------------------------------------------------------------------


def test_a_stored_token_is_used_before_asking_the_endpoint(
    endpoint: Endpoint, clock: Clock, issuer_key: RsaSigner
) -> None:
    store = DictStore()
    stored = jwt_issuer(issuer_key, clock)(0)
    store.values["BEARER_TOKEN"] = stored

    assert token_of(endpoint, clock, store=store).token() == stored
    assert endpoint.requests == []


def test_a_new_jwt_is_written_to_the_store(
    endpoint: Endpoint, clock: Clock, issuer_key: RsaSigner
) -> None:
    endpoint.make_token = jwt_issuer(issuer_key, clock)
    store = DictStore()

    value = token_of(endpoint, clock, store=store, key="ORDERS_TOKEN").token()

    assert store.values == {"ORDERS_TOKEN": value}


def test_an_instance_reads_the_token_another_one_stored(
    endpoint: Endpoint, clock: Clock, issuer_key: RsaSigner
) -> None:
    endpoint.make_token = jwt_issuer(issuer_key, clock)
    store = DictStore()
    first = token_of(endpoint, clock, store=store).token()

    assert token_of(endpoint, clock, store=store).token() == first
    assert len(endpoint.requests) == 1


def test_an_expiring_stored_token_is_replaced(
    endpoint: Endpoint, clock: Clock, issuer_key: RsaSigner
) -> None:
    endpoint.make_token = jwt_issuer(issuer_key, clock)
    store = DictStore()
    expiring = store.values["BEARER_TOKEN"] = jwt_issuer(issuer_key, clock, lifetime=5)(
        0
    )

    value = token_of(endpoint, clock, store=store).token()

    assert value != expiring
    assert len(endpoint.requests) == 1
    assert store.values["BEARER_TOKEN"] == value


def test_opaque_tokens_are_not_stored(endpoint: Endpoint, clock: Clock) -> None:
    store = DictStore()

    token_of(endpoint, clock, store=store).token()

    assert store.writes == 0


def test_a_failing_store_does_not_fail_the_token(
    endpoint: Endpoint, clock: Clock, issuer_key: RsaSigner, stream: io.StringIO
) -> None:
    endpoint.make_token = jwt_issuer(issuer_key, clock)

    assert token_of(endpoint, clock, store=BrokenStore()).token()
    operations = [line["operation"] for line in events(stream, "Token store failed")]
    assert operations == ["read", "write"]


# -- failures -------------------------------------------------------------------------


def test_refused_credentials_raise_token_error_without_the_secret(
    endpoint: Endpoint, clock: Clock, stream: io.StringIO
) -> None:
    runtime.setup_root_logger(level="DEBUG", stream=stream)
    endpoint.failure = (401, {"error": "invalid_client", "error_description": SECRET})
    token = token_of(endpoint, clock)

    with pytest.raises(runtime.TokenError) as raised:
        token.token()

    assert (
        str(raised.value)
        == f"the token endpoint {endpoint.url} answered 401 invalid_client"
    )
    for text in (str(raised.value), repr(token), stream.getvalue()):
        assert SECRET not in text
        assert "s3cr3t" not in text
    assert any(line["event"] == "HTTP request" for line in lines(stream))


def test_the_token_never_reaches_a_log_line(
    endpoint: Endpoint, clock: Clock, stream: io.StringIO
) -> None:
    runtime.setup_root_logger(level="DEBUG", stream=stream)
    token = token_of(endpoint, clock, auth="body")

    value = token.token()

    assert value not in stream.getvalue()
    assert SECRET not in stream.getvalue()


def test_an_unreachable_endpoint_raises_token_error(clock: Clock) -> None:
    token = runtime.ClientCredentialsToken(
        f"http://127.0.0.1:{closed_port()}/token",
        client_id="orders",
        client_secret=SECRET,
        client=runtime.HttpClient(retries=0),
        clock=clock,
    )

    with pytest.raises(runtime.TokenError, match="no access token from") as raised:
        token.token()
    assert isinstance(raised.value.__cause__, runtime.HttpConnectionError)


@pytest.mark.parametrize(
    "answer",
    [
        {"token_type": "Bearer"},
        {"access_token": ""},
        ["a"],
        {"access_token": "x", "token_type": "mac"},
    ],
)
def test_an_answer_without_a_bearer_token_is_refused(
    endpoint: Endpoint, clock: Clock, answer: Any
) -> None:
    endpoint.failure = (200, answer)

    with pytest.raises(runtime.TokenError, match="token endpoint"):
        token_of(endpoint, clock).token()


def test_an_open_circuit_refuses_without_calling_the_endpoint(
    endpoint: Endpoint, clock: Clock
) -> None:
    circuit = runtime.CircuitBreaker(
        "auth", failure_threshold=2, expected=runtime.TokenError, clock=clock
    )
    endpoint.failure = (500, {})
    token = token_of(
        endpoint, clock, circuit=circuit, client=runtime.HttpClient(retries=0)
    )
    for _ in range(2):
        with pytest.raises(runtime.TokenError):
            token.token()
        clock.now += 5  # past the wait after a failed request

    with pytest.raises(runtime.TokenError) as raised:
        token.token()

    assert isinstance(raised.value.__cause__, runtime.CircuitOpenError)
    assert len(endpoint.requests) == 2


def test_bad_arguments_are_refused_at_once() -> None:
    with pytest.raises(ValueError, match="token_url"):
        runtime.ClientCredentialsToken("auth.example.com/token")
    with pytest.raises(ValueError, match="auth"):
        runtime.ClientCredentialsToken("https://a.example/t", auth="digest")
    with pytest.raises(ValueError, match="refresh_window"):
        runtime.ClientCredentialsToken("https://a.example/t", refresh_window=(300, 60))
