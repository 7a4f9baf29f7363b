"""`fleece build`: the deployment zip of a service.

- ``artifact``: the build as one function (inputs, cache, limits, the zip).
- ``wheels``: the target runtime and pip fetching its wheels without Docker.
- ``container``: the same build inside the AWS SAM build image (``--docker``).
- ``ziparchive``: the reproducible zip.
"""
