"""Helpers of the `fleece run` tests: a fake Rackspace identity and FAWS."""

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any

Fleece = Callable[..., tuple[int, str, str]]

USERS = {"alice": "alice-api-key", "bob": "bob-api-key"}
TENANT = "998877"


def faws_keys(account: str) -> dict[str, str]:
    """The credentials the fake FAWS hands out for an account."""
    return {
        "accessKeyId": f"ASIAFAWS{account}",
        "secretAccessKey": f"faws-secret-for-{account}",
        "sessionToken": f"faws-session-token-for-{account}",
    }


@dataclass
class Call:
    path: str
    headers: dict[str, str]
    body: Any


@dataclass
class FakeRackspace:
    """Which user may manage which accounts, and every call received."""

    url: str = ""
    accounts: dict[str, set[str]] = field(
        default_factory=lambda: {
            "alice": {"111111111111", "222222222222", "333333333333"},
            "bob": {"111111111111"},
        }
    )
    calls: list[Call] = field(default_factory=list)

    def identity_users(self) -> list[str]:
        return [
            c.body["auth"]["RAX-KSKEY:apiKeyCredentials"]["username"]
            for c in self.calls
            if c.path == "/v2.0/tokens"
        ]


class RackspaceHandler(BaseHTTPRequestHandler):
    fake: FakeRackspace

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        body = json.loads(self.rfile.read(length) or b"null")
        self.fake.calls.append(Call(self.path, dict(self.headers), body))
        if self.path == "/v2.0/tokens":
            self._identity(body)
        elif self.path.startswith("/v0/awsAccounts/") and self.path.endswith(
            "/credentials"
        ):
            self._faws(self.path.split("/")[3], body)
        else:
            self._reply(404, {"message": "not found"})

    def _identity(self, body: Any) -> None:
        login = body["auth"]["RAX-KSKEY:apiKeyCredentials"]
        if USERS.get(login["username"]) != login["apiKey"]:
            self._reply(401, {"unauthorized": {"code": 401}})
            return
        token = {"id": f"token-of-{login['username']}", "tenant": {"id": TENANT}}
        self._reply(200, {"access": {"token": token}})

    def _faws(self, account: str, body: Any) -> None:
        token = self.headers.get("X-Auth-Token", "")
        user = token.removeprefix("token-of-")
        if (
            not token.startswith("token-of-")
            or self.headers.get("X-Tenant-Id") != TENANT
            or account not in self.fake.accounts.get(user, set())
        ):
            self._reply(401, {"message": "unauthorized"})
            return
        assert body == {"credential": {"duration": "3600"}}
        self._reply(200, {"credential": faws_keys(account)})

    def _reply(self, status: int, data: Any) -> None:
        raw = json.dumps(data).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def log_message(self, format: str, *args: object) -> None:
        pass
