"""Rackspace identity and FAWS: temporary AWS credentials of a Rackspace account.

Two HTTPS calls: the identity service trades a username and API key for a token
and tenant id; FAWS (Fanatical AWS) trades the token for an hour of credentials
of one AWS account the user may manage. Both base URLs can be pointed elsewhere
(a private endpoint, a test server) with ``FLEECE_RACKSPACE_IDENTITY_URL`` and
``FLEECE_FAWS_URL``. No secret (API key, token, AWS keys) is ever put in a
message.
"""

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from fleece.aws.credentials import AwsCredentials
from fleece.aws.environments import Environment
from fleece.errors import BadInput, FleeceError

__all__ = [
    "RackspaceLogin",
    "RackspaceToken",
    "faws_credentials",
    "identity_token",
    "rackspace_login",
]

IDENTITY_URL = "https://identity.api.rackspacecloud.com"
FAWS_URL = "https://accounts.api.manage.rackspace.com"
TIMEOUT = 30


@dataclass(frozen=True)
class RackspaceLogin:
    """A Rackspace username and API key. Never print or log the key."""

    username: str
    api_key: str

    def __repr__(self) -> str:
        return f"RackspaceLogin(username={self.username!r}, api_key=...)"


def rackspace_login(
    environment: Environment | None,
    username: str | None = None,
    api_key: str | None = None,
    environ: Mapping[str, str] = os.environ,
) -> RackspaceLogin | None:
    """The Rackspace login for ``environment``; ``None`` when a part is missing.

    Each part comes from the argument, else the variable the environment names
    (``rs_username_var``/``rs_apikey_var``), else ``RS_USERNAME``/``RS_API_KEY``.
    """
    named_user = environment.rs_username_var if environment else None
    named_key = environment.rs_apikey_var if environment else None
    username = (
        username
        or (environ.get(named_user) if named_user else None)
        or environ.get("RS_USERNAME")
    )
    api_key = (
        api_key
        or (environ.get(named_key) if named_key else None)
        or environ.get("RS_API_KEY")
    )
    if not username or not api_key:
        return None
    return RackspaceLogin(username, api_key)


@dataclass(frozen=True)
class RackspaceToken:
    """An identity token and the tenant it belongs to. Never print the token."""

    token: str
    tenant: str

    def __repr__(self) -> str:
        return f"RackspaceToken(tenant={self.tenant!r}, token=...)"


def identity_token(login: RackspaceLogin) -> RackspaceToken:
    """Authenticate to Rackspace identity with a username and API key."""
    url = _base("FLEECE_RACKSPACE_IDENTITY_URL", IDENTITY_URL) + "/v2.0/tokens"
    body = {
        "auth": {
            "RAX-KSKEY:apiKeyCredentials": {
                "username": login.username,
                "apiKey": login.api_key,
            }
        }
    }
    reply = _post(url, body, {}, "Rackspace identity")
    if reply.status_code == 401:
        raise BadInput(
            f"Rackspace identity refused user {login.username!r} (401 Unauthorized): "
            "check the username and API key"
        )
    data = _json(reply, "Rackspace identity")
    try:
        token = data["access"]["token"]
        return RackspaceToken(str(token["id"]), str(token["tenant"]["id"]))
    except (KeyError, TypeError):
        raise FleeceError("Rackspace identity answered without a token") from None


def faws_credentials(
    token: RackspaceToken, account: str, duration: int = 3600
) -> AwsCredentials:
    """Temporary credentials of the AWS ``account`` from FAWS."""
    base = _base("FLEECE_FAWS_URL", FAWS_URL)
    url = f"{base}/v0/awsAccounts/{account}/credentials"
    headers = {"X-Auth-Token": token.token, "X-Tenant-Id": token.tenant}
    body = {"credential": {"duration": str(duration)}}
    reply = _post(url, body, headers, "Rackspace FAWS")
    if reply.status_code in (401, 403):
        reason = "401 Unauthorized" if reply.status_code == 401 else "403 Forbidden"
        raise BadInput(
            f"Rackspace FAWS refused credentials for account {account} ({reason}): "
            "check that your Rackspace user may manage this account"
        )
    if reply.status_code == 404:
        raise BadInput(f"Rackspace FAWS knows no AWS account {account} (404)")
    data = _json(reply, "Rackspace FAWS")
    try:
        credential = data["credential"]
        return AwsCredentials(
            str(credential["accessKeyId"]),
            str(credential["secretAccessKey"]),
            str(credential["sessionToken"]),
        )
    except (KeyError, TypeError):
        raise FleeceError("Rackspace FAWS answered without credentials") from None


def _base(variable: str, default: str) -> str:
    return (os.environ.get(variable) or default).rstrip("/")


def _post(url: str, body: Any, headers: dict[str, str], service: str) -> Any:
    import requests

    try:
        return requests.post(
            url,
            json=body,
            headers={"Accept": "application/json", **headers},
            timeout=TIMEOUT,
        )
    except requests.RequestException as error:
        # The exception text holds the URL only: no secret travels in it.
        raise FleeceError(
            f"could not reach {service} at {url}: {type(error).__name__}"
        ) from None


def _json(reply: Any, service: str) -> Any:
    if not 200 <= reply.status_code < 300:
        raise FleeceError(f"{service} answered HTTP {reply.status_code}")
    try:
        return reply.json()
    except ValueError:
        raise FleeceError(
            f"{service} answered with something other than JSON"
        ) from None
