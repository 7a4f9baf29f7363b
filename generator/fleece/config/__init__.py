"""`fleece config`: KMS-encrypted configuration of a service.

- ``formats``: YAML/JSON text in and out.
- ``model``: the open and closed formats, validation and stage resolution (pure).
- ``kms``: the KMS/SSM clients of each stage (the only AWS layer).
- ``module``: the encrypted payload and the generated ``fleece_config.py``.
- ``parameter_store``: a stage's config as SSM SecureString parameters.
- ``operations``: import, export, render, diff as plain functions.
- ``edit``: the editor round trip.
"""
