"""fleece_runtime.raxauth: Rackspace token checks against an identity server on 127.0.0.1."""

import json
import socket
from http.server import BaseHTTPRequestHandler
from typing import Any

import pytest

from runtime_stub import fleece_runtime as runtime
from tests.runtime.runtime_servers import HttpServer

TOKEN = "gAAAAABWq9MR30nr8Zx_-bgyAzBnWgFxnsxbup_cN01G7aoM66c7wEwz4r"
USER_DATA = {
    "access": {
        "token": {"id": TOKEN, "tenant": {"id": "123456", "name": "123456"}},
        "user": {"name": "mytenantname", "roles": []},
    }
}


@pytest.fixture
def identity(http_server: HttpServer, monkeypatch: pytest.MonkeyPatch) -> HttpServer:
    """Rackspace identity on 127.0.0.1: it knows TOKEN, and only TOKEN."""

    def respond(
        attempt: int, request: BaseHTTPRequestHandler
    ) -> tuple[int, dict[str, str], bytes]:
        if request.path == f"/v2.0/tokens/{TOKEN}":
            return (
                200,
                {"Content-Type": "application/json"},
                json.dumps(USER_DATA).encode(),
            )
        return 404, {}, b'{"itemNotFound": {"code": 404}}'

    http_server.responder = respond
    monkeypatch.setenv("FLEECE_RACKSPACE_IDENTITY_URL", http_server.url + "/")
    return http_server


@runtime.raxauth.authenticate()
def list_orders(token: str | None = None, userinfo: Any = None) -> Any:
    return userinfo


def test_a_known_token_validates_to_identitys_answer(identity: HttpServer) -> None:
    assert runtime.raxauth.validate(TOKEN) == USER_DATA

    [request] = identity.exchange.requests
    assert request["method"] == "GET"
    assert request["headers"]["X-Auth-Token"] == TOKEN
    assert request["headers"]["Accept"] == "application/json"


def test_an_unknown_token_is_unauthorized(identity: HttpServer) -> None:
    with pytest.raises(
        runtime.raxauth.Unauthorized, match=r"^401: Unauthorized"
    ) as error:
        runtime.raxauth.validate("bogus")

    assert error.value.status_code == 401
    assert TOKEN not in str(error.value)


def test_a_token_cannot_change_the_path_it_is_checked_at(identity: HttpServer) -> None:
    with pytest.raises(runtime.raxauth.Unauthorized):
        runtime.raxauth.validate(f"../tokens/{TOKEN}")

    assert identity.exchange.requests[0]["path"] == (
        f"/v2.0/tokens/..%2Ftokens%2F{TOKEN}"
    )


def test_authenticate_passes_identitys_answer_as_userinfo(identity: HttpServer) -> None:
    assert list_orders(token=TOKEN, userinfo=None) == USER_DATA


def test_authenticate_refuses_a_call_without_a_token(identity: HttpServer) -> None:
    with pytest.raises(runtime.raxauth.Unauthorized, match="401: Unauthorized"):
        list_orders()

    assert identity.attempts == 0


def test_authenticate_refuses_an_unknown_token(identity: HttpServer) -> None:
    with pytest.raises(runtime.raxauth.Unauthorized, match="401: Unauthorized"):
        list_orders(token="bogus")


def test_an_unreachable_identity_is_not_a_refusal(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    monkeypatch.setenv("FLEECE_RACKSPACE_IDENTITY_URL", f"http://127.0.0.1:{port}")

    with pytest.raises(OSError):
        runtime.raxauth.validate(TOKEN, timeout=2)
