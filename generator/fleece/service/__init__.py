"""A generated service: its layout, rendering, and keeping it current.

- ``layout``: the ``.fleece/`` folder (answers, settings, pristine base, ...).
- ``render``: the bundled template rendered in memory.
- ``generated``: headers of generator-owned files (version and digest).
- ``new``: `fleece new`, all or nothing.
- ``base``: the pristine base, ``.fleece/base.tar.bz2``.
- ``worktree``: the service's files as update and check see them (links, line
  endings from ``eol``).
- ``merge``: three-way merge of one file; ``conflicts``: the blocks it leaves.
- ``state``: ``assess``, the one verdict on a service that check and update
  share; ``findings``: what it reports; ``plan``: the writes an update makes.
- ``journal``: writing a plan so that a kill is recoverable; ``interrupts``:
  signals and temp folders.
- ``update``: `fleece update`.
- ``check``: `fleece check`.
- ``git``: the one way fleece runs git.
"""
