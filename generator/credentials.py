"""AWS credentials for an environment: one place for `fleece run` and `fleece config`.

The base credentials of an environment come from, in this order:

1. its AWS ``profile``, when it names one;
2. Rackspace FAWS, when a Rackspace login is known: given by the caller
   (``fleece run -u/-k``), else read from the variables the environment names in
   ``rs_username_var``/``rs_apikey_var``, else from ``RS_USERNAME``/``RS_API_KEY``;
3. boto3's standard chain (environment variables, shared files, SSO, instance
   roles).

When the environment names a ``role``, it is assumed with STS on top of the base
credentials. ``AWS_ENDPOINT_URL`` is honoured by boto3 itself, which is how the
tests point everything at a local moto server.
"""

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from fleece.environments import Environment
from fleece.errors import BadInput, FleeceError

if TYPE_CHECKING:
    import boto3


@dataclass(frozen=True)
class AwsCredentials:
    """Temporary or long-lived AWS credentials. Never print or log these."""

    access_key_id: str
    secret_access_key: str
    session_token: str | None = None

    def __repr__(self) -> str:
        return f"AwsCredentials(access_key_id={self.access_key_id[:4]}..., ...)"

    def as_environment(self) -> dict[str, str]:
        """The variables a child process needs to use these credentials."""
        variables = {
            "AWS_ACCESS_KEY_ID": self.access_key_id,
            "AWS_SECRET_ACCESS_KEY": self.secret_access_key,
        }
        if self.session_token:
            variables["AWS_SESSION_TOKEN"] = self.session_token
        return variables


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


def session_for_environment(
    environment: Environment | None, *, login: RackspaceLogin | None = None
) -> "boto3.Session":
    """A boto3 session holding the credentials of ``environment``.

    ``None`` means no environment file is in play: boto3's standard chain.
    ``login`` is a Rackspace login given on the command line; without it one is
    looked for in the environment variables (see the module docstring).
    """
    import boto3

    if environment is None:
        return boto3.Session()
    if environment.profile is None:
        login = login or rackspace_login(environment)
    if environment.profile is None and login is not None:
        from fleece.rackspace import faws_credentials, identity_token

        faws = faws_credentials(identity_token(login), environment.account)
        session = _session_of(faws, environment.region)
    else:
        session = _profile_session(environment)
    if environment.role:
        credentials = assume_role(session, environment.account, environment.role)
        session = _session_of(credentials, environment.region or session.region_name)
    return session


def credentials_of(session: "boto3.Session") -> AwsCredentials:
    """The credentials a session holds, resolved now (e.g. for a child process)."""
    from botocore.exceptions import BotoCoreError

    try:
        found = session.get_credentials()
        frozen = found.get_frozen_credentials() if found is not None else None
    except BotoCoreError as error:
        raise FleeceError(f"could not get AWS credentials: {error}") from None
    if frozen is None:
        raise BadInput(
            "no AWS credentials found: configure a profile or set AWS_ACCESS_KEY_ID"
        )
    return AwsCredentials(frozen.access_key, frozen.secret_key, frozen.token)


def _profile_session(environment: Environment) -> "boto3.Session":
    import boto3
    from botocore.exceptions import ProfileNotFound

    try:
        return boto3.Session(
            profile_name=environment.profile, region_name=environment.region
        )
    except ProfileNotFound:
        raise BadInput(
            f"environment {environment.name!r}: AWS profile {environment.profile!r} "
            "is not in your AWS config"
        ) from None


def _session_of(credentials: AwsCredentials, region: str | None) -> "boto3.Session":
    import boto3
    import botocore.session

    # Explicit credentials: an AWS_PROFILE in the environment must not be read
    # (a profile that does not exist would even make the session fail).
    core = botocore.session.get_session({"profile": (None, None, None, None)})
    return boto3.Session(
        botocore_session=core,
        aws_access_key_id=credentials.access_key_id,
        aws_secret_access_key=credentials.secret_access_key,
        aws_session_token=credentials.session_token,
        region_name=region,
    )


def assume_role(session: "boto3.Session", account: str, role: str) -> AwsCredentials:
    """Assume ``role`` in ``account`` with the credentials of ``session``."""
    from botocore.exceptions import BotoCoreError, ClientError

    arn = role if role.startswith("arn:") else f"arn:aws:iam::{account}:role/{role}"
    try:
        # STS answers in every region; us-east-1 when nothing names one.
        sts = session.client("sts", region_name=session.region_name or "us-east-1")
        response = sts.assume_role(RoleArn=arn, RoleSessionName="fleece")
    except (BotoCoreError, ClientError) as error:
        raise FleeceError(f"could not assume role {arn}: {error}") from None
    creds = response["Credentials"]
    return AwsCredentials(
        creds["AccessKeyId"], creds["SecretAccessKey"], creds["SessionToken"]
    )
