"""AWS credentials: the value, sessions holding it, and STS assume-role.

``fleece.aws.session`` decides where an environment's credentials come from;
this module only holds and moves them. ``AWS_ENDPOINT_URL`` is honoured by
boto3 itself, which is how the tests point everything at a local moto server.
"""

from dataclasses import dataclass
from typing import TYPE_CHECKING

from fleece.aws.environments import Environment
from fleece.errors import BadInput, FleeceError

if TYPE_CHECKING:
    import boto3


__all__ = [
    "AwsCredentials",
    "assume_role",
    "credentials_of",
    "profile_session",
    "session_of",
]


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


def profile_session(environment: Environment) -> "boto3.Session":
    """A session of the AWS profile ``environment`` names, in its region."""
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


def session_of(credentials: AwsCredentials, region: str | None) -> "boto3.Session":
    """A session holding exactly ``credentials``, whatever the environment says."""
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
