"""`fleece config`: KMS-encrypted configuration of a service.

- ``formats``: YAML/JSON text in and out, bounded (size, nesting, no aliases).
- ``model``: the open and closed formats, validation, per-stage choices (pure).
- ``stages``: a stage resolved once to its entry, key and credentials.
- ``kms``: the KMS calls, each for a stage.
- ``module``: the encrypted payload and the generated ``fleece_config.py``.
- ``parameter_store``: a stage's config as SSM SecureString parameters.
- ``operations``: import, export, migrate, render, forget, diff as plain functions.
- ``edit``: the editor round trip.
"""
