"""The AWS session of an environment: one place for `fleece run` and `fleece config`.

The base credentials of an environment come from, in this order:

1. its AWS ``profile``, when it names one;
2. Rackspace FAWS, when a Rackspace login is known: given by the caller
   (``fleece run -u/-k``), else read from the variables the environment names in
   ``rs_username_var``/``rs_apikey_var``, else from ``RS_USERNAME``/``RS_API_KEY``;
3. boto3's standard chain (environment variables, shared files, SSO, instance
   roles).

When the environment names a ``role``, it is assumed with STS on top of the base
credentials.
"""

from typing import TYPE_CHECKING

from fleece.aws.credentials import assume_role, profile_session, session_of
from fleece.aws.environments import Environment
from fleece.aws.rackspace import (
    RackspaceLogin,
    faws_credentials,
    identity_token,
    rackspace_login,
)

if TYPE_CHECKING:
    import boto3

__all__ = ["session_for_environment"]


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
        faws = faws_credentials(identity_token(login), environment.account)
        session = session_of(faws, environment.region)
    else:
        session = profile_session(environment)
    if environment.role:
        credentials = assume_role(session, environment.account, environment.role)
        session = session_of(credentials, environment.region or session.region_name)
    return session
