"""A generated service: its layout, rendering, and keeping it current.

- ``layout``: the ``.fleece/`` folder (answers, settings, pristine base).
- ``render``: the bundled template rendered in memory.
- ``generated``: headers of generator-owned files (version and digest).
- ``new``: `fleece new`, all or nothing.
- ``merge``: three-way merge of one file.
- ``update``: `fleece update`.
- ``check``: `fleece check`.
- ``git``: the one way fleece runs git.
"""
