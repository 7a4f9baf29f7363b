"""Child of run.py: one peer's figure, measured in the process of its own venv.

Usage: python peers.py MEASURE PEER WORK_DIR CALLS REPEATS

- ``keys``: writes WORK_DIR/tokens.json: a 2048-bit RSA key set (JWKS) and
  RS256 tokens signed with its key, made with ``cryptography`` (pyjwt venv).
- ``verify``: PEER ``fleece`` (fleece_runtime's ``JwtVerifier`` with the key
  set given) or ``pyjwt`` (``jwt.decode`` with the key read once with
  ``PyJWK``): each call verifies one of the tokens, its signature and its
  ``exp``, ``iat``, ``iss`` and ``aud``.
- ``emf``: PEER ``fleece`` (fleece_runtime's ``Metrics``) or ``powertools``
  (Powertools' ``Metrics``): each call is an invocation of a handler
  decorated by the peer's ``log_metrics``, which adds three metrics (one
  high-resolution), a dimension and a metadata field; the line goes to
  /dev/null. The bare handler's time is subtracted.

Prints ``{"us": [...]}``: per repeat, the microseconds per call of CALLS
calls. Peers are imported by name, so this file runs in any of the venvs.
The key set and tokens are made once per run: ``cryptography`` is a test
dependency of fleece, never imported by the runtime.
"""

import importlib
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ISSUER = "https://issuer.example"
AUDIENCE = "orders"
TOKENS = 100


def make_keys(work: Path) -> None:
    """The key set and the tokens both verifiers read."""
    import base64

    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding, rsa

    def b64url(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    numbers = key.public_key().public_numbers()
    jwk = {
        "kty": "RSA",
        "kid": "bench-1",
        "use": "sig",
        "alg": "RS256",
        "n": b64url(numbers.n.to_bytes(256, "big")),
        "e": b64url(numbers.e.to_bytes(3, "big")),
    }
    now = int(time.time())
    header = b64url(
        json.dumps({"alg": "RS256", "typ": "JWT", "kid": "bench-1"}).encode()
    )
    tokens = []
    for number in range(TOKENS):
        claims = {
            "iss": ISSUER,
            "aud": AUDIENCE,
            "sub": f"customer-{number}",
            "iat": now,
            "exp": now + 7 * 24 * 3600,
            "scope": "orders/read orders/write",
        }
        signed = f"{header}.{b64url(json.dumps(claims).encode())}"
        signature = key.sign(signed.encode(), padding.PKCS1v15(), hashes.SHA256())
        tokens.append(f"{signed}.{b64url(signature)}")
    (work / "tokens.json").write_text(
        json.dumps({"jwks": {"keys": [jwk]}, "tokens": tokens})
    )


def verifier(peer: str, work: Path) -> tuple[Callable[[str], Any], list[str]]:
    """The peer's verification of one token, and the tokens."""
    material = json.loads((work / "tokens.json").read_text())
    if peer == "fleece":
        fleece_runtime = importlib.import_module("fleece_runtime")
        verify = fleece_runtime.JwtVerifier(
            jwks=material["jwks"], issuer=ISSUER, audience=AUDIENCE
        ).verify
    else:
        jwt = importlib.import_module("jwt")
        key = jwt.PyJWK(material["jwks"]["keys"][0]).key

        def verify(token: str) -> Any:
            return jwt.decode(
                token, key, algorithms=["RS256"], audience=AUDIENCE, issuer=ISSUER
            )

    return verify, material["tokens"]


def time_verify(peer: str, work: Path, calls: int, repeats: int) -> list[float]:
    verify, tokens = verifier(peer, work)
    for token in tokens:  # every token verifies, and the first calls warm up
        assert verify(token)["aud"] == AUDIENCE
    figures = []
    for _ in range(repeats):
        started = time.perf_counter()
        for index in range(calls):
            verify(tokens[index % len(tokens)])
        figures.append((time.perf_counter() - started) / calls * 1e6)
    return figures


class Context:
    """The part of a Lambda context the peers read."""

    function_name = "orders"
    memory_limit_in_mb = 512
    invoked_function_arn = "arn:aws:lambda:eu-west-1:123456789012:function:orders"
    aws_request_id = "c6af9ac6-7b61-11e6-9a41-93e812345678"


def handlers(peer: str) -> tuple[Callable[[Any, Any], Any], Callable[[Any, Any], Any]]:
    """(bare handler, the same handler with the peer's metrics)."""
    if peer == "fleece":
        metrics: Any = importlib.import_module("fleece_runtime").Metrics(
            "Orders", service="orders"
        )
        high: dict[str, Any] = {"resolution": 1}
    else:
        powertools = importlib.import_module("aws_lambda_powertools.metrics")
        metrics = powertools.Metrics(namespace="Orders", service="orders")
        high = {"resolution": powertools.MetricResolution.High}
        unit = powertools.MetricUnit

    def bare(event: Any, context: Any) -> dict[str, int]:
        return {"statusCode": 200}

    log_metrics: Callable[[Callable[[Any, Any], Any]], Callable[[Any, Any], Any]]
    log_metrics = metrics.log_metrics

    @log_metrics
    def measured(event: Any, context: Any) -> dict[str, int]:
        if peer == "fleece":
            metrics.add("OrderPlaced", 1, "Count")
            metrics.add("BasketSize", 3, "Count")
            metrics.add("Latency", 12.5, "Milliseconds", **high)
        else:
            metrics.add_metric("OrderPlaced", unit.Count, 1)
            metrics.add_metric("BasketSize", unit.Count, 3)
            metrics.add_metric("Latency", unit.Milliseconds, 12.5, **high)
        metrics.add_dimension("channel", "web")
        metrics.add_metadata("order_id", "o-123")
        return {"statusCode": 200}

    return bare, measured


def time_emf(peer: str, calls: int, repeats: int) -> list[float]:
    bare, measured = handlers(peer)
    event: dict[str, Any] = {}
    context = Context()
    real_stdout = sys.stdout
    with open(os.devnull, "w") as devnull:
        sys.stdout = devnull  # both peers write their lines to stdout
        try:
            for _ in range(200):
                measured(event, context)
            figures = []
            for _ in range(repeats):
                started = time.perf_counter()
                for _ in range(calls):
                    measured(event, context)
                middle = time.perf_counter()
                for _ in range(calls):
                    bare(event, context)
                ended = time.perf_counter()
                figures.append(((middle - started) - (ended - middle)) / calls * 1e6)
        finally:
            sys.stdout = real_stdout
    return figures


def main() -> None:
    measure, peer, work, calls, repeats = sys.argv[1:6]
    if measure == "keys":
        make_keys(Path(work))
        return
    if measure == "verify":
        figures = time_verify(peer, Path(work), int(calls), int(repeats))
    else:
        figures = time_emf(peer, int(calls), int(repeats))
    print(json.dumps({"us": figures}))


if __name__ == "__main__":
    main()
