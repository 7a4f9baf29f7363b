"""fleece_runtime's JWT verification: tokens signed by OpenSSL, key sets served on 127.0.0.1."""

import base64
import hashlib
import hmac
import io
import json
import math
import os
import string
import time
from collections.abc import Callable
from typing import Any

import pytest

from runtime_stub import fleece_runtime as runtime
from tests.runtime.jwt_keys import (
    EcSigner,
    RsaSigner,
    b64url,
    b64url_number,
    claims,
    ec_signer,
    encode,
    key_set,
    rsa_signer,
    sign,
)
from tests.runtime.outbound_servers import events
from tests.runtime.runtime_servers import HttpServer

ISSUER = "https://issuer.example"


class Clock:
    """Seconds since the epoch, moved by the test."""

    def __init__(self) -> None:
        self.now = float(int(time.time()))

    def __call__(self) -> float:
        return self.now


class Jwks:
    """A JWKS endpoint on 127.0.0.1 serving ``document``; counts its fetches."""

    def __init__(self, server: HttpServer, document: dict[str, Any]) -> None:
        self.server = server
        self.document = document
        self.status = 200
        self.url = f"{server.url}/.well-known/jwks.json"
        server.responder = lambda n, request: (
            self.status,
            {"Content-Type": "application/json"},
            json.dumps(self.document).encode(),
        )

    @property
    def fetches(self) -> int:
        return self.server.attempts


@pytest.fixture(scope="module")
def rsa_key() -> RsaSigner:
    return rsa_signer("rsa-1")


@pytest.fixture(scope="module")
def other_rsa_key() -> RsaSigner:
    return rsa_signer("rsa-2")


@pytest.fixture(scope="module")
def ec_key() -> EcSigner:
    return ec_signer("ec-1")


@pytest.fixture
def jwks(http_server: HttpServer, rsa_key: RsaSigner, ec_key: EcSigner) -> Jwks:
    return Jwks(http_server, key_set(rsa_key, ec_key))


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def verifier(jwks: Jwks, clock: Clock) -> runtime.JwtVerifier:
    return runtime.JwtVerifier(
        jwks.url,
        issuer=ISSUER,
        audience="orders",
        algorithms=("RS256", "ES256"),
        clock=clock,
    )


def refused(verifier: runtime.JwtVerifier, token: str) -> runtime.JwtError:
    with pytest.raises(runtime.JwtError) as raised:
        verifier.verify(token)
    return raised.value


# -- valid tokens -------------------------------------------------------------


def test_a_valid_rs256_token_gives_its_claims(
    verifier: runtime.JwtVerifier, rsa_key: RsaSigner
) -> None:
    token = sign(rsa_key, claims(scope="orders/read"))

    verified = verifier.verify(token)

    assert verified["sub"] == "customer-7"
    assert verified["scope"] == "orders/read"


def test_a_valid_es256_token_gives_its_claims(
    verifier: runtime.JwtVerifier, ec_key: EcSigner
) -> None:
    assert verifier.verify(sign(ec_key, claims()))["sub"] == "customer-7"


@pytest.mark.parametrize("algorithm", ["RS384", "RS512"])
def test_rs384_and_rs512_verify_when_accepted(
    jwks: Jwks, rsa_key: RsaSigner, algorithm: str
) -> None:
    verifier = runtime.JwtVerifier(jwks.url, audience="orders", algorithms=(algorithm,))

    assert verifier.verify(sign(rsa_key, claims(), algorithm))["sub"] == "customer-7"


def test_es256_signatures_of_many_messages_verify_and_forgeries_do_not(
    ec_key: EcSigner,
) -> None:
    # The P-256 arithmetic is ours: check it on many scalars, not one.
    other = ec_signer("ec-1")
    verifier = runtime.JwtVerifier(
        jwks=key_set(ec_key), audience="orders", algorithms=("ES256",)
    )
    for number in range(25):
        payload = claims(jti=f"token-{number}-{os.urandom(8).hex()}")
        assert verifier.verify(sign(ec_key, payload))["jti"] == payload["jti"]
        with pytest.raises(runtime.JwtError, match="signature"):
            verifier.verify(sign(other, payload))


def test_an_aud_list_holding_the_audience_is_accepted(
    verifier: runtime.JwtVerifier, rsa_key: RsaSigner
) -> None:
    token = sign(rsa_key, claims(aud=["billing", "orders"]))

    assert verifier.verify(token)["aud"] == ["billing", "orders"]


def test_a_key_set_without_kids_verifies_a_token_without_kid(
    rsa_key: RsaSigner,
) -> None:
    jwk = rsa_key.jwk()
    del jwk["kid"]
    verifier = runtime.JwtVerifier(jwks={"keys": [jwk]}, audience="orders")
    header = {"alg": "RS256", "typ": "JWT"}
    signing_input = encode(header, claims())
    token = f"{signing_input}.{b64url(rsa_key.sign('RS256', signing_input.encode()))}"

    assert verifier.verify(token)["sub"] == "customer-7"


# -- refused tokens -----------------------------------------------------------


def test_a_tampered_claim_is_refused(
    verifier: runtime.JwtVerifier, rsa_key: RsaSigner
) -> None:
    header, _, signature = sign(rsa_key, claims()).split(".")
    forged = b64url(json.dumps(claims(sub="admin")).encode())

    error = refused(verifier, f"{header}.{forged}.{signature}")

    assert error.reason == "signature"


def test_a_tampered_signature_is_refused(
    verifier: runtime.JwtVerifier, rsa_key: RsaSigner, ec_key: EcSigner
) -> None:
    for token in (sign(rsa_key, claims()), sign(ec_key, claims())):
        head, _, signature = token.rpartition(".")
        raw = bytearray(base64.urlsafe_b64decode(signature + "=="))
        raw[-1] ^= 1

        assert refused(verifier, f"{head}.{b64url(bytes(raw))}").reason == "signature"


def test_a_signature_with_unused_bits_set_is_refused(
    verifier: runtime.JwtVerifier, rsa_key: RsaSigner, ec_key: EcSigner
) -> None:
    # One signature, one string: the bits past the last byte must be zero.
    alphabet = string.ascii_uppercase + string.ascii_lowercase + string.digits + "-_"
    for token in (sign(rsa_key, claims()), sign(ec_key, claims())):
        head, _, signature = token.rpartition(".")
        last = alphabet[alphabet.index(signature[-1]) ^ 1]
        variant = f"{head}.{signature[:-1]}{last}"
        assert base64.urlsafe_b64decode(variant.split(".")[2] + "==") == (
            base64.urlsafe_b64decode(signature + "==")
        )

        assert refused(verifier, variant).reason == "malformed"
        assert verifier.verify(token)["sub"] == "customer-7"


def test_a_token_signed_by_another_key_with_the_same_kid_is_refused(
    verifier: runtime.JwtVerifier, rsa_key: RsaSigner
) -> None:
    impostor = rsa_signer(rsa_key.kid)

    assert refused(verifier, sign(impostor, claims())).reason == "signature"


def test_an_expired_token_is_refused(
    verifier: runtime.JwtVerifier, rsa_key: RsaSigner, clock: Clock
) -> None:
    token = sign(rsa_key, claims(exp=int(clock.now) - 120))

    error = refused(verifier, token)

    assert error.reason == "expired"
    assert str(error) == "the token expired 120 s ago"


def test_leeway_accepts_a_token_that_expired_moments_ago(
    verifier: runtime.JwtVerifier, rsa_key: RsaSigner, clock: Clock
) -> None:
    token = sign(rsa_key, claims(exp=int(clock.now) - 20))

    assert verifier.verify(token)["sub"] == "customer-7"
    clock.now += 10
    assert refused(verifier, token).reason == "expired"


def test_a_token_not_valid_yet_is_refused(
    verifier: runtime.JwtVerifier, rsa_key: RsaSigner, clock: Clock
) -> None:
    token = sign(rsa_key, claims(nbf=int(clock.now) + 300))

    assert refused(verifier, token).reason == "not_yet_valid"


def test_a_token_issued_in_the_future_is_refused(
    verifier: runtime.JwtVerifier, rsa_key: RsaSigner, clock: Clock
) -> None:
    token = sign(rsa_key, claims(iat=int(clock.now) + 300))

    assert refused(verifier, token).reason == "issued_in_future"


def test_a_token_without_exp_is_refused_by_default(
    verifier: runtime.JwtVerifier, rsa_key: RsaSigner
) -> None:
    error = refused(verifier, sign(rsa_key, claims(exp=None)))

    assert error.reason == "missing_claim"
    assert "exp" in str(error)


def test_a_time_claim_that_is_not_a_number_is_refused(
    verifier: runtime.JwtVerifier, rsa_key: RsaSigner
) -> None:
    assert (
        refused(verifier, sign(rsa_key, claims(exp="tomorrow"))).reason == "malformed"
    )


def test_a_required_claim_that_is_null_is_missing(
    verifier: runtime.JwtVerifier, rsa_key: RsaSigner
) -> None:
    payload = claims()
    payload["exp"] = None

    assert refused(verifier, sign(rsa_key, payload)).reason == "missing_claim"


@pytest.mark.parametrize("name", ["exp", "nbf", "iat"])
@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_a_time_claim_that_is_not_finite_is_refused(
    verifier: runtime.JwtVerifier, rsa_key: RsaSigner, name: str, value: float
) -> None:
    # json.dumps writes NaN and Infinity, which JSON parsers in Python read back.
    error = refused(verifier, sign(rsa_key, claims(**{name: value})))

    assert error.reason == "malformed"
    assert name in str(error)


def test_a_time_claim_too_large_for_a_float_is_refused(
    verifier: runtime.JwtVerifier, rsa_key: RsaSigner
) -> None:
    header = b64url(json.dumps({"alg": "RS256", "kid": rsa_key.kid}).encode())
    text = json.dumps(claims()).replace('"exp": ', '"exp": 1e999, "_": ')
    signing_input = f"{header}.{b64url(text.encode())}"
    signature = b64url(rsa_key.sign("RS256", signing_input.encode()))

    error = refused(verifier, f"{signing_input}.{signature}")

    assert error.reason == "malformed"


def test_a_token_for_another_audience_is_refused(
    verifier: runtime.JwtVerifier, rsa_key: RsaSigner
) -> None:
    for audience in ("billing", ["billing"], None, 7):
        token = sign(rsa_key, claims(aud=audience))

        assert refused(verifier, token).reason == "audience"


def test_a_verifier_without_audience_refuses_a_token_for_any_audience(
    rsa_key: RsaSigner,
) -> None:
    # RFC 7519 (4.1.3): a token naming audiences is only for them.
    verifier = runtime.JwtVerifier(jwks=key_set(rsa_key))

    for audience in ("billing", ["billing", "orders"], 7):
        token = sign(rsa_key, claims(aud=audience))

        assert refused(verifier, token).reason == "audience"
    assert verifier.verify(sign(rsa_key, claims(aud=None)))["sub"] == "customer-7"


def test_any_audience_is_accepted_only_when_asked_for(rsa_key: RsaSigner) -> None:
    verifier = runtime.JwtVerifier(jwks=key_set(rsa_key), any_audience=True)

    assert verifier.verify(sign(rsa_key, claims(aud="billing")))["aud"] == "billing"
    with pytest.raises(ValueError, match="any_audience"):
        runtime.JwtVerifier(jwks=key_set(rsa_key), audience="orders", any_audience=True)


def test_a_token_from_another_issuer_is_refused(
    verifier: runtime.JwtVerifier, rsa_key: RsaSigner
) -> None:
    token = sign(rsa_key, claims(iss="https://evil.example"))

    assert refused(verifier, token).reason == "issuer"


def test_an_issuer_that_is_not_a_string_is_refused(
    verifier: runtime.JwtVerifier, rsa_key: RsaSigner
) -> None:
    for issuer in ([ISSUER], {"iss": ISSUER}, None):
        assert refused(verifier, sign(rsa_key, claims(iss=issuer))).reason == "issuer"


@pytest.mark.parametrize("algorithm", ["none", "None", "NONE"])
def test_an_unsigned_token_is_refused(
    verifier: runtime.JwtVerifier, rsa_key: RsaSigner, algorithm: str
) -> None:
    unsigned = encode({"alg": algorithm, "kid": rsa_key.kid}, claims())

    for token in (f"{unsigned}.", f"{unsigned}.{b64url(b'x')}"):
        error = refused(verifier, token)

        assert error.reason == "algorithm"
        assert "alg none" in str(error)


def test_an_hmac_token_keyed_with_the_rsa_public_key_is_refused(
    verifier: runtime.JwtVerifier, rsa_key: RsaSigner
) -> None:
    # The classic confusion: HS256 with the public key (known to all) as secret.
    public = json.dumps(rsa_key.jwk()).encode()
    signing_input = encode({"alg": "HS256", "kid": rsa_key.kid}, claims())
    mac = hmac.new(public, signing_input.encode(), hashlib.sha256).digest()

    error = refused(verifier, f"{signing_input}.{b64url(mac)}")

    assert error.reason == "algorithm"
    assert "HMAC" in str(error)


@pytest.mark.parametrize("algorithm", ["PS256", "ES512", "RS1", "EdDSA", ""])
def test_an_unknown_algorithm_is_refused(
    verifier: runtime.JwtVerifier, rsa_key: RsaSigner, algorithm: str
) -> None:
    token = sign(rsa_key, claims(), "RS256", alg=algorithm)

    assert refused(verifier, token).reason == "algorithm"


def test_an_algorithm_not_accepted_by_the_verifier_is_refused(
    jwks: Jwks, ec_key: EcSigner
) -> None:
    verifier = runtime.JwtVerifier(jwks.url)  # RS256 only

    error = refused(verifier, sign(ec_key, claims()))

    assert error.reason == "algorithm"
    assert "accepted: RS256" in str(error)


def test_an_es256_token_naming_an_rsa_key_is_refused(
    verifier: runtime.JwtVerifier, ec_key: EcSigner, rsa_key: RsaSigner
) -> None:
    token = sign(ec_key, claims(), kid=rsa_key.kid)

    assert refused(verifier, token).reason == "algorithm"


def test_a_key_for_another_algorithm_is_not_used(rsa_key: RsaSigner) -> None:
    verifier = runtime.JwtVerifier(
        jwks={"keys": [rsa_key.jwk(alg="RS512")]},
        audience="orders",
        algorithms=("RS256", "RS512"),
    )

    assert refused(verifier, sign(rsa_key, claims(), "RS256")).reason == "algorithm"
    assert verifier.verify(sign(rsa_key, claims(), "RS512"))["sub"] == "customer-7"


def test_critical_header_parameters_are_refused(
    verifier: runtime.JwtVerifier, rsa_key: RsaSigner
) -> None:
    token = sign(rsa_key, claims(), crit=["exp"])

    assert refused(verifier, token).reason == "malformed"


def valid_parts() -> tuple[str, str, str]:
    header = b64url(json.dumps({"alg": "RS256", "kid": "rsa-1"}).encode())
    return header, b64url(json.dumps(claims()).encode()), b64url(b"\x01" * 256)


MALFORMED: dict[str, Callable[[str, str, str], object]] = {
    "empty": lambda h, c, s: "",
    "two parts": lambda h, c, s: f"{h}.{c}",
    "four parts": lambda h, c, s: f"{h}.{c}.{s}.{s}",
    "encrypted (five parts)": lambda h, c, s: f"{h}.{c}.{s}.{s}.{s}",
    "padding": lambda h, c, s: f"{h}=.{c}.{s}",
    "standard base64": lambda h, c, s: f"{h}.{c}.{s}+/",
    "not base64": lambda h, c, s: f"{h}.{c}!.{s}",
    "impossible length": lambda h, c, s: f"{h}.{c}.{s}AAA",
    "header not JSON": lambda h, c, s: f"{b64url(b'alg')}.{c}.{s}",
    "header a list": lambda h, c, s: f"{b64url(b'[1]')}.{c}.{s}",
    "claims not UTF-8": lambda h, c, s: f"{h}.{b64url(bytes([0xFF, 0xFE]))}.{s}",
    "non-ASCII": lambda h, c, s: f"{h}.{c}é.{s}",
    "too long": lambda h, c, s: f"{h}.{c + 'A' * 20000}.{s}",
    "not a string": lambda h, c, s: 42,
}


@pytest.mark.parametrize("shape", list(MALFORMED))
def test_a_malformed_token_is_refused_clearly(
    verifier: runtime.JwtVerifier, shape: str
) -> None:
    token = MALFORMED[shape](*valid_parts())

    with pytest.raises(runtime.JwtError) as raised:
        verifier.verify(token)  # type: ignore[arg-type]

    assert raised.value.reason == "malformed"
    assert str(raised.value).startswith(("the token", "a JWT"))


def test_errors_never_repeat_the_token_or_its_claims(
    verifier: runtime.JwtVerifier, rsa_key: RsaSigner, clock: Clock
) -> None:
    secretive = {
        "sub": "s3cr3t-subject",
        "iss": "https://s3cr3t.example",
        "aud": "s3cr3t",
    }
    for token in (
        sign(rsa_key, claims(**secretive)),
        sign(rsa_key, claims(exp=int(clock.now) - 999, sub="s3cr3t-subject")),
        sign(rsa_key, claims(sub="s3cr3t-subject"), kid="s3cr3t-kid"),
    ):
        error = refused(verifier, token)

        assert "s3cr3t" not in str(error)
        assert token.split(".")[1] not in str(error)


# -- the key set --------------------------------------------------------------


def test_the_key_set_is_fetched_once_and_cached(
    verifier: runtime.JwtVerifier, jwks: Jwks, rsa_key: RsaSigner, ec_key: EcSigner
) -> None:
    for _ in range(5):
        verifier.verify(sign(rsa_key, claims()))
        verifier.verify(sign(ec_key, claims()))

    assert jwks.fetches == 1


def test_the_key_set_is_fetched_again_after_max_age(
    verifier: runtime.JwtVerifier, jwks: Jwks, rsa_key: RsaSigner, clock: Clock
) -> None:
    token = sign(rsa_key, claims(exp=int(clock.now) + 7200))
    verifier.verify(token)
    clock.now += 3599
    verifier.verify(token)
    assert jwks.fetches == 1

    clock.now += 2
    verifier.verify(token)

    assert jwks.fetches == 2


def test_a_rotated_key_is_found_by_fetching_the_key_set_again(
    verifier: runtime.JwtVerifier,
    jwks: Jwks,
    rsa_key: RsaSigner,
    other_rsa_key: RsaSigner,
    clock: Clock,
) -> None:
    verifier.verify(sign(rsa_key, claims()))
    jwks.document = key_set(rsa_key, other_rsa_key)
    clock.now += 31

    assert verifier.verify(sign(other_rsa_key, claims()))["sub"] == "customer-7"
    assert jwks.fetches == 2


def test_unknown_kids_fetch_the_key_set_at_most_once_per_interval(
    verifier: runtime.JwtVerifier, jwks: Jwks, rsa_key: RsaSigner, clock: Clock
) -> None:
    verifier.verify(sign(rsa_key, claims()))
    clock.now += 60
    for number in range(20):
        error = refused(verifier, sign(rsa_key, claims(), kid=f"made-up-{number}"))
        assert error.reason == "key"
    assert jwks.fetches == 2  # the first, and one for the first unknown kid

    clock.now += 30
    refused(verifier, sign(rsa_key, claims(), kid="made-up-again"))

    assert jwks.fetches == 3


def test_a_failed_fetch_keeps_the_keys_fetched_before(
    jwks: Jwks, rsa_key: RsaSigner, clock: Clock, stream: io.StringIO
) -> None:
    no_retries = runtime.HttpClient(retries=0)
    verifier = runtime.JwtVerifier(
        jwks.url, audience="orders", client=no_retries, clock=clock
    )
    token = sign(rsa_key, claims(exp=int(clock.now) + 7200))
    verifier.verify(token)
    jwks.status = 503
    clock.now += 3601

    assert verifier.verify(token)["sub"] == "customer-7"
    (warning,) = events(
        stream, "Key set fetch failed: the keys fetched before are used"
    )
    assert warning["level"] == "WARNING"
    verifier.verify(token)
    assert jwks.fetches == 2  # not again before refetch_interval
    clock.now += 30
    verifier.verify(token)
    assert jwks.fetches == 3


def test_an_unknown_kid_while_the_key_set_is_unreachable_is_a_refused_token(
    verifier: runtime.JwtVerifier,
    jwks: Jwks,
    rsa_key: RsaSigner,
    clock: Clock,
    stream: io.StringIO,
) -> None:
    verifier.verify(sign(rsa_key, claims()))
    jwks.status = 503
    clock.now += 60

    assert refused(verifier, sign(rsa_key, claims(), kid="rotated")).reason == "key"
    assert events(stream, "Key set fetch failed")


def test_no_key_set_at_all_raises_jwks_error(jwks: Jwks, rsa_key: RsaSigner) -> None:
    jwks.status = 500
    verifier = runtime.JwtVerifier(jwks.url)

    with pytest.raises(runtime.JwksError, match=r"could not be read: 500"):
        verifier.verify(sign(rsa_key, claims()))


def test_without_keys_a_failed_fetch_is_not_repeated_before_the_interval(
    jwks: Jwks, rsa_key: RsaSigner, clock: Clock
) -> None:
    jwks.status = 503
    verifier = runtime.JwtVerifier(
        jwks.url, audience="orders", client=runtime.HttpClient(retries=0), clock=clock
    )
    token = sign(rsa_key, claims(exp=int(clock.now) + 7200))
    for _ in range(5):
        with pytest.raises(runtime.JwksError, match=r"could not be read: 503"):
            verifier.verify(token)
        clock.now += 5
    assert jwks.fetches == 1

    jwks.status = 200
    clock.now += 5

    assert verifier.verify(token)["sub"] == "customer-7"
    assert jwks.fetches == 2


def test_a_failed_refetch_for_an_unknown_kid_does_not_postpone_the_refresh(
    verifier: runtime.JwtVerifier,
    jwks: Jwks,
    rsa_key: RsaSigner,
    other_rsa_key: RsaSigner,
    clock: Clock,
) -> None:
    start = clock.now
    token = sign(rsa_key, claims(exp=int(start) + 7200))
    verifier.verify(token)
    clock.now += 100
    jwks.status = 503
    refused(verifier, sign(rsa_key, claims(exp=int(start) + 7200), kid="rotated"))
    jwks.status = 200
    jwks.document = key_set(other_rsa_key)  # rsa-1 revoked

    clock.now = start + 3601

    assert refused(verifier, token).reason == "key"


def test_a_document_that_is_not_a_key_set_raises_jwks_error(
    jwks: Jwks, rsa_key: RsaSigner
) -> None:
    jwks.document = {"issuer": ISSUER}
    verifier = runtime.JwtVerifier(jwks.url)

    with pytest.raises(runtime.JwksError, match="not a key set"):
        verifier.verify(sign(rsa_key, claims()))


def unusable_keys(rsa_key: RsaSigner, ec_key: EcSigner) -> dict[str, dict[str, Any]]:
    small = rsa_signer("small", 1024)
    good, point = rsa_key.jwk(), ec_key.jwk()
    return {
        "a 1024-bit modulus": small.jwk(),
        "an even exponent": {**good, "e": b64url_number(65536)},
        "an exponent of 1": {**good, "e": b64url_number(1)},
        "an even modulus": {
            **good,
            "n": b64url_number(
                int.from_bytes(base64.urlsafe_b64decode(good["n"] + "==")) - 1
            ),
        },
        "an encryption key": rsa_key.jwk(use="enc"),
        "no verify operation": rsa_key.jwk(key_ops=["encrypt"]),
        "an unknown algorithm": rsa_key.jwk(alg="PS256"),
        "an RSA key for ES256": rsa_key.jwk(alg="ES256"),
        "a point off the curve": {**point, "y": b64url_number(1, 32)},
        "a short coordinate": {**point, "x": b64url_number(5)},
        "another curve": {**point, "crv": "P-384"},
        "a symmetric key": {"kty": "oct", "kid": "rsa-1", "k": b64url(b"secret")},
        "a modulus not in base64url": {**good, "n": good["n"] + "=="},
    }


def test_unusable_keys_are_left_out_with_a_warning(
    rsa_key: RsaSigner, ec_key: EcSigner, stream: io.StringIO
) -> None:
    for problem, jwk in unusable_keys(rsa_key, ec_key).items():
        jwk = {**jwk, "kid": "bad"}
        verifier = runtime.JwtVerifier(
            jwks={"keys": [jwk, rsa_key.jwk()]},
            audience="orders",
            algorithms=("RS256", "ES256"),
        )
        token = sign(ec_key if jwk.get("kty") == "EC" else rsa_key, claims(), kid="bad")

        assert refused(verifier, token).reason == "key", problem
        assert verifier.verify(sign(rsa_key, claims()))["sub"] == "customer-7"
    warnings = events(stream, "Key set key left out")
    assert len(warnings) == len(unusable_keys(rsa_key, ec_key))
    assert {line["kid"] for line in warnings} == {"bad"}


def test_a_verifier_needs_one_source_of_keys_and_known_algorithms() -> None:
    with pytest.raises(ValueError, match="jwks_url or jwks"):
        runtime.JwtVerifier()
    with pytest.raises(ValueError, match="jwks_url or jwks"):
        runtime.JwtVerifier("https://x.example/jwks", jwks={"keys": []})
    for algorithm in ("none", "HS256", "PS256"):
        with pytest.raises(ValueError, match="not supported"):
            runtime.JwtVerifier(jwks={"keys": []}, algorithms=(algorithm,))


# -- bearer tokens and unverified reading -------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        {"Authorization": "Bearer abc.def.ghi"},
        {"authorization": "bearer abc.def.ghi"},
        {"AUTHORIZATION": "  Bearer   abc.def.ghi  "},
    ],
)
def test_bearer_token_reads_the_authorization_header(headers: dict[str, str]) -> None:
    assert runtime.bearer_token(headers) == "abc.def.ghi"


def test_bearer_token_reads_the_router_s_request() -> None:
    request = runtime.parse_event(
        runtime.testing.rest_api_event(
            "GET", "/orders", headers={"authorization": "Bearer abc.def.ghi"}
        )
    )

    assert isinstance(request, runtime.HttpRequest)
    assert runtime.bearer_token(request) == "abc.def.ghi"


def test_no_bearer_token_is_none() -> None:
    assert runtime.bearer_token({}) is None
    assert runtime.bearer_token({"Authorization": "Basic dXNlcjpwdw=="}) is None


@pytest.mark.parametrize(
    "value", ["Bearer", "Bearer ", "Bearer a b", "Bearer a, Bearer b"]
)
def test_a_bearer_header_without_one_token_is_refused(value: str) -> None:
    with pytest.raises(runtime.JwtError, match="no single bearer token"):
        runtime.bearer_token({"Authorization": value})


def test_decode_jwt_reads_header_and_claims_without_verifying(
    rsa_key: RsaSigner,
) -> None:
    token = sign(other_key := rsa_signer("unknown"), claims(sub="anyone"))

    header, read = runtime.decode_jwt(token)

    assert header == {"alg": "RS256", "typ": "JWT", "kid": other_key.kid}
    assert read["sub"] == "anyone"


# -- the Router middleware ----------------------------------------------------


@pytest.fixture
def app(verifier: runtime.JwtVerifier) -> runtime.Router:
    """A Router whose routes need a verified token; the route answers its caller."""
    app = runtime.Router()
    app.use(runtime.jwt_middleware(verifier))

    @app.get("/orders")
    def list_orders(request: runtime.HttpRequest) -> dict[str, Any]:
        return {"customer": request.claims["sub"]}

    return app


def get(app: runtime.Router, headers: dict[str, str]) -> dict[str, Any]:
    """The Router's answer to ``GET /orders`` with ``headers`` (an HTTP API event)."""
    event = runtime.testing.http_api_event("GET", "/orders", headers=headers)
    result: dict[str, Any] = app.resolve(event, runtime.LambdaContext())
    return result


def answer_body(result: dict[str, Any]) -> Any:
    return json.loads(result["body"])


def test_the_middleware_puts_verified_claims_on_the_request(
    app: runtime.Router, rsa_key: RsaSigner
) -> None:
    result = get(app, {"Authorization": f"Bearer {sign(rsa_key, claims())}"})

    assert result["statusCode"] == 200
    assert answer_body(result) == {"customer": "customer-7"}


def test_the_middleware_answers_401_without_a_token(app: runtime.Router) -> None:
    result = get(app, {})

    assert result["statusCode"] == 401
    assert result["headers"]["WWW-Authenticate"] == "Bearer"
    assert answer_body(result) == {
        "error": {
            "code": 401,
            "message": "Unauthorized",
            "details": {"reason": "missing"},
        }
    }


def test_the_middleware_answers_401_to_a_refused_token(
    app: runtime.Router, rsa_key: RsaSigner, clock: Clock, stream: io.StringIO
) -> None:
    token = sign(rsa_key, claims(exp=int(clock.now) - 100))

    result = get(app, {"authorization": f"Bearer {token}"})

    assert result["statusCode"] == 401
    assert result["headers"]["WWW-Authenticate"] == (
        'Bearer error="invalid_token", error_description="the token expired 100 s ago"'
    )
    assert answer_body(result)["error"]["details"] == {"reason": "expired"}
    (line,) = events(stream, "Token refused")
    assert line["reason"] == "expired"
    assert token not in stream.getvalue()


@pytest.mark.parametrize("authorization", ["Bearer a.b.c", "Bearer", "Bearer one two"])
def test_the_middleware_answers_401_to_a_malformed_bearer_header(
    app: runtime.Router, authorization: str
) -> None:
    result = get(app, {"Authorization": authorization})

    assert result["statusCode"] == 401
    assert answer_body(result)["error"]["details"] == {"reason": "malformed"}
    assert result["headers"]["WWW-Authenticate"].startswith(
        'Bearer error="invalid_token"'
    )


def test_a_guard_decides_on_the_claims_the_middleware_set(
    verifier: runtime.JwtVerifier, rsa_key: RsaSigner
) -> None:
    def admins_only(request: runtime.HttpRequest) -> Any:
        if "admin" not in request.claims.get("groups", []):
            raise runtime.HTTPError(403)
        return None

    app = runtime.Router(guard=admins_only)
    app.use(runtime.jwt_middleware(verifier))

    @app.get("/orders")
    def list_orders() -> list[str]:
        return ["o-1"]

    admin = sign(rsa_key, claims(groups=["admin"]))
    customer = sign(rsa_key, claims(groups=["customers"]))

    assert get(app, {"Authorization": f"Bearer {admin}"})["statusCode"] == 200
    assert get(app, {"Authorization": f"Bearer {customer}"})["statusCode"] == 403


def test_an_optional_token_lets_requests_without_one_through(
    verifier: runtime.JwtVerifier, rsa_key: RsaSigner
) -> None:
    app = runtime.Router()
    app.use(runtime.jwt_middleware(verifier, required=False))

    @app.get("/orders")
    def list_orders(request: runtime.HttpRequest) -> dict[str, Any]:
        return {"customer": request.claims.get("sub")}

    assert answer_body(get(app, {})) == {"customer": None}
    token = sign(rsa_key, claims())
    assert answer_body(get(app, {"Authorization": f"Bearer {token}"})) == {
        "customer": "customer-7"
    }
    assert get(app, {"Authorization": "Bearer a.b.c"})["statusCode"] == 401


def test_the_middleware_takes_its_own_answer_to_a_refusal(
    verifier: runtime.JwtVerifier,
) -> None:
    app = runtime.Router()
    app.use(
        runtime.jwt_middleware(verifier, unauthorized=lambda error: ("go away", 403))
    )

    @app.get("/orders")
    def list_orders() -> list[str]:
        return ["o-1"]

    result = get(app, {})

    assert result["statusCode"] == 403
    assert result["body"] == "go away"


def test_an_unreachable_key_set_is_a_500_not_a_401(
    app: runtime.Router, jwks: Jwks, rsa_key: RsaSigner
) -> None:
    jwks.status = 503

    result = get(app, {"Authorization": f"Bearer {sign(rsa_key, claims())}"})

    assert result["statusCode"] == 500


def test_queue_records_pass_through_the_middleware(
    verifier: runtime.JwtVerifier,
) -> None:
    app = runtime.Router()
    app.use(runtime.jwt_middleware(verifier))
    placed: list[str] = []

    @app.sqs("orders")
    def order_placed(record: runtime.SqsRecord) -> None:
        placed.append(record.body)

    result = app.resolve(
        runtime.testing.sqs_event("placed", queue="orders"), runtime.LambdaContext()
    )

    assert result == {"batchItemFailures": []}
    assert placed == ["placed"]
