"""The AWS credentials of an environment, for `fleece run` and `fleece config`.

- ``environments``: ``environments.yml`` (accounts, roles, profiles, stage map).
- ``credentials``: the credentials value, sessions holding it, STS assume-role.
- ``rackspace``: Rackspace identity and FAWS temporary credentials.
- ``session``: which of those an environment uses (the one entry point).
"""
