"""The encrypted payload of a stage, and the ``fleece_config.py`` that carries it.

The module's source is ``runtime_stub/fleece_config.py``, a real module with an
empty payload between two marker comments; rendering replaces that block and
adds the generated-file header. The payload format (``chunk_context``,
``open_payload``) is defined once, in the stub, and used from there.
"""

import hashlib
import importlib.util
import json
import os
import zlib
from dataclasses import dataclass
from functools import cache
from types import ModuleType
from typing import Any

from fleece import __version__
from fleece.config.kms import encrypt_chunks
from fleece.config.stages import Stage
from fleece.resources import runtime_stub_dir
from fleece.service.generated import render_generated

__all__ = ["EncryptedPayload", "render_python_module", "seal_payload", "stub"]

_BEGIN = "# fleece: encrypted payload begins\n"
_END = "# fleece: encrypted payload ends\n"
_LINE = 72  # base64 characters per source line: black- and ruff-clean anywhere


@dataclass(frozen=True)
class EncryptedPayload:
    """A stage's config: zlib-compressed JSON, salted, KMS-encrypted in chunks."""

    stage: str
    key_id: str  # the key ARN
    sha256: str
    chunks: tuple[str, ...]

    def as_json(self) -> str:
        """What `render --encrypt` prints."""
        data = {
            "format": "fleece-config-2",
            "stage": self.stage,
            "key_id": self.key_id,
            "sha256": self.sha256,
            "compression": "zlib",
            "salt_bytes": stub().SALT_SIZE,
            "chunks": list(self.chunks),
        }
        return json.dumps(data, indent=2) + "\n"


@cache
def stub() -> ModuleType:
    """The stub ``fleece_config.py`` loaded as a module (payload helpers)."""
    path = runtime_stub_dir() / "fleece_config.py"
    spec = importlib.util.spec_from_file_location("_fleece_config_stub", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def seal_payload(config: dict[str, Any], stage: Stage) -> EncryptedPayload:
    """Compress and encrypt ``config`` for ``stage`` with its key."""
    helpers = stub()
    plain = json.dumps(config, ensure_ascii=False, separators=(",", ":"))
    payload = os.urandom(helpers.SALT_SIZE) + zlib.compress(plain.encode("utf-8"), 9)
    digest = hashlib.sha256(payload).hexdigest()
    size = helpers.CHUNK_SIZE
    chunks = [payload[start : start + size] for start in range(0, len(payload), size)]
    contexts = [
        helpers.chunk_context(stage.name, index, len(chunks), digest)
        for index in range(len(chunks))
    ]
    key_arn, blobs = encrypt_chunks(stage, chunks, contexts)
    return EncryptedPayload(stage.name, key_arn, digest, tuple(blobs))


def render_python_module(payload: EncryptedPayload, config_sha256: str) -> str:
    """The text of ``fleece_config.py`` for ``payload``, with its header."""
    source = (runtime_stub_dir() / "fleece_config.py").read_text(encoding="utf-8")
    start, end = source.index(_BEGIN), source.index(_END) + len(_END)
    body = source[:start] + _payload_block(payload) + source[end:]
    return render_generated(
        body,
        __version__,
        fields={"stage": payload.stage, "config-sha256": config_sha256},
        refreshed_by=f"fleece config render {payload.stage} --python",
    )


def _payload_block(payload: EncryptedPayload) -> str:
    lines = [
        _BEGIN,
        f"STAGE = {json.dumps(payload.stage)}\n",
        f"KEY_ID = {json.dumps(payload.key_id)}\n",
        f"SHA256 = {json.dumps(payload.sha256)}\n",
        "ENCRYPTED_CONFIG: tuple[str, ...] = (\n",
    ]
    for chunk in payload.chunks:
        pieces = [chunk[i : i + _LINE] for i in range(0, len(chunk), _LINE)]
        if len(pieces) == 1:
            lines.append(f'    "{pieces[0]}",\n')
            continue
        lines.append("    (\n")
        lines.extend(f'        "{piece}"\n' for piece in pieces)
        lines.append("    ),\n")
    lines += [")\n", _END]
    return "".join(lines)
