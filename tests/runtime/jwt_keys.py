"""Keys, key sets and signed JWTs for the tests, made with `cryptography`.

The runtime verifies tokens in pure Python; these helpers sign them with
OpenSSL (through `cryptography`), so that every test checks the runtime
against an implementation it shares nothing with.
"""

import base64
import json
import time
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature


def hash_of(algorithm: str) -> hashes.HashAlgorithm:
    """The hash of RS256, RS384 or RS512."""
    return {"256": hashes.SHA256(), "384": hashes.SHA384(), "512": hashes.SHA512()}[
        algorithm[2:]
    ]


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_number(number: int, size: int | None = None) -> str:
    return b64url(number.to_bytes(size or (number.bit_length() + 7) // 8, "big"))


@dataclass
class RsaSigner:
    """An RSA key pair and its kid."""

    kid: str
    key: rsa.RSAPrivateKey

    def jwk(self, **extra: Any) -> dict[str, Any]:
        numbers = self.key.public_key().public_numbers()
        return {
            "kty": "RSA",
            "kid": self.kid,
            "use": "sig",
            "n": b64url_number(numbers.n),
            "e": b64url_number(numbers.e),
            **extra,
        }

    def sign(self, algorithm: str, data: bytes) -> bytes:
        return self.key.sign(data, padding.PKCS1v15(), hash_of(algorithm))


@dataclass
class EcSigner:
    """A P-256 key pair and its kid."""

    kid: str
    key: ec.EllipticCurvePrivateKey

    def jwk(self, **extra: Any) -> dict[str, Any]:
        numbers = self.key.public_key().public_numbers()
        return {
            "kty": "EC",
            "kid": self.kid,
            "crv": "P-256",
            "x": b64url_number(numbers.x, 32),
            "y": b64url_number(numbers.y, 32),
            **extra,
        }

    def sign(self, algorithm: str, data: bytes) -> bytes:
        r, s = decode_dss_signature(self.key.sign(data, ec.ECDSA(hashes.SHA256())))
        return r.to_bytes(32, "big") + s.to_bytes(32, "big")


def rsa_signer(kid: str, bits: int = 2048) -> RsaSigner:
    return RsaSigner(
        kid, rsa.generate_private_key(public_exponent=65537, key_size=bits)
    )


def ec_signer(kid: str) -> EcSigner:
    return EcSigner(kid, ec.generate_private_key(ec.SECP256R1()))


def key_set(*signers: RsaSigner | EcSigner) -> dict[str, Any]:
    return {"keys": [signer.jwk() for signer in signers]}


def encode(header: dict[str, Any], claims: dict[str, Any]) -> str:
    """The signing input: base64url header and claims joined by a dot."""
    parts = (json.dumps(header).encode(), json.dumps(claims).encode())
    return ".".join(b64url(part) for part in parts)


def sign(
    signer: RsaSigner | EcSigner,
    claims: dict[str, Any],
    algorithm: str | None = None,
    **header: Any,
) -> str:
    """A compact JWS of ``claims`` by ``signer`` (RS256 or ES256 by default)."""
    algorithm = algorithm or ("ES256" if isinstance(signer, EcSigner) else "RS256")
    signing_input = encode(
        {"alg": algorithm, "typ": "JWT", "kid": signer.kid, **header}, claims
    )
    signature = signer.sign(algorithm, signing_input.encode("ascii"))
    return f"{signing_input}.{b64url(signature)}"


def claims(**overrides: Any) -> dict[str, Any]:
    """Claims valid now for issuer ``https://issuer.example`` and audience ``orders``."""
    now = int(time.time())
    values: dict[str, Any] = {
        "iss": "https://issuer.example",
        "aud": "orders",
        "sub": "customer-7",
        "iat": now,
        "nbf": now,
        "exp": now + 600,
    }
    values.update(overrides)
    return {name: value for name, value in values.items() if value is not None}
