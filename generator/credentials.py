"""AWS credentials for an environment: one place for `fleece run` and `fleece config`.

The base credentials come from the environment's AWS ``profile`` when it names
one, else from boto3's standard chain (environment variables, shared files,
SSO, instance roles). When the environment names a ``role``, it is assumed with
STS on top of the base credentials. ``AWS_ENDPOINT_URL`` is honoured by boto3
itself, which is how the tests point everything at a local moto server.
"""

from dataclasses import dataclass
from typing import TYPE_CHECKING

from fleece.environments import Environment
from fleece.errors import FleeceError

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


def session_for_environment(environment: Environment | None) -> "boto3.Session":
    """A boto3 session holding the credentials of ``environment``.

    ``None`` means no environment file is in play: boto3's standard chain.
    """
    import boto3

    if environment is None:
        return boto3.Session()
    session = boto3.Session(
        profile_name=environment.profile, region_name=environment.region
    )
    if environment.role:
        credentials = assume_role(session, environment.account, environment.role)
        session = boto3.Session(
            aws_access_key_id=credentials.access_key_id,
            aws_secret_access_key=credentials.secret_access_key,
            aws_session_token=credentials.session_token,
            region_name=environment.region or session.region_name,
        )
    return session


def assume_role(session: "boto3.Session", account: str, role: str) -> AwsCredentials:
    """Assume ``role`` in ``account`` with the credentials of ``session``."""
    from botocore.exceptions import BotoCoreError, ClientError

    arn = role if role.startswith("arn:") else f"arn:aws:iam::{account}:role/{role}"
    try:
        response = session.client("sts").assume_role(
            RoleArn=arn, RoleSessionName="fleece"
        )
    except (BotoCoreError, ClientError) as error:
        raise FleeceError(f"could not assume role {arn}: {error}") from None
    creds = response["Credentials"]
    return AwsCredentials(
        creds["AccessKeyId"], creds["SecretAccessKey"], creds["SessionToken"]
    )
