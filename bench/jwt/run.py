"""Benchmark fleece_runtime's JWT verification and EMF metrics against their peers.

One command, ``python bench/jwt/run.py``: it creates (or reuses) virtual
environments under ``bench/.venvs/`` (``bare``: the standard library,
fleece_runtime on the path; ``pyjwt``: PyJWT and cryptography; and
``powertools``: aws-lambda-powertools, from PyPI on the first run) and
measures, side by side in one run (see ``peers.py``):

- RS256 verification of a JWT signed with a 2048-bit key, signature and
  claims (``exp``, ``iat``, ``iss``, ``aud``): fleece_runtime's
  ``JwtVerifier`` in pure Python against PyJWT with cryptography (OpenSSL).
  Target: under 1 ms per token.
- The metrics of one invocation (three metrics, a dimension, metadata,
  written as one EMF line by the ``log_metrics`` decorator) with
  fleece_runtime's ``Metrics`` against Powertools' ``Metrics``. Target: at
  most half of Powertools' cost.

Each configuration runs once per round in a process of its own, rounds
repeated, so load from other processes weighs on all alike. Figures are the
median over rounds of each process's best repeat.
"""

import argparse
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
WORK = REPO / "bench" / ".work" / "jwt"
sys.path.insert(0, str(REPO))

from bench.runtime.run import (  # noqa: E402 (the repository must be on the path first)
    ENVIRONMENTS,
    ensure_environment,
    python_of,
    run_child,
)

PYJWT = ["PyJWT", "cryptography"]
JWT_TARGET_US = 1000.0
EMF_TARGET_RATIO = 0.5
# measure -> [(label, peer of peers.py, environment)], fleece first
PEERS = {
    "verify": [
        ("fleece_runtime JwtVerifier (pure Python)", "fleece", "bare"),
        ("PyJWT + cryptography (OpenSSL)", "pyjwt", "pyjwt"),
    ],
    "emf": [
        ("fleece_runtime Metrics", "fleece", "bare"),
        ("Powertools Metrics", "powertools", "powertools"),
    ],
}
CALLS = {"verify": 300, "emf": 2000}


def peer(measure: str, name: str, environment: str, calls: int, repeats: int) -> float:
    """The best microseconds per call of one process of ``name``."""
    out = run_child(
        environment,
        HERE / "peers.py",
        measure,
        name,
        WORK,
        calls,
        repeats,
        POWERTOOLS_METRICS_NAMESPACE="Orders",
    )
    return float(min(out["us"]))


def measure_all(rounds: int, repeats: int) -> dict[tuple[str, str], float]:
    """Median over rounds of the microseconds per call, by (measure, peer)."""
    figures: dict[tuple[str, str], list[float]] = {}
    for _ in range(rounds):
        for measure, peers in PEERS.items():
            for _, name, environment in peers:
                value = peer(measure, name, environment, CALLS[measure], repeats)
                figures.setdefault((measure, name), []).append(value)
    return {key: statistics.median(values) for key, values in figures.items()}


def table(figures: dict[tuple[str, str], float]) -> list[str]:
    rows = [
        "| measure | peer | µs per call | per second | x peer |",
        "|---|---|---:|---:|---:|",
    ]
    titles = {"verify": "RS256 verify (2048-bit)", "emf": "EMF metrics per invocation"}
    for measure, peers in PEERS.items():
        reference = figures[(measure, peers[1][1])]
        for label, name, _ in peers:
            value = figures[(measure, name)]
            rows.append(
                f"| {titles[measure]} | {label} | {value:.1f} | {1e6 / value:,.0f} "
                f"| {value / reference:.2f} |"
            )
    jwt_us = figures[("verify", "fleece")]
    jwt_ratio = jwt_us / figures[("verify", "pyjwt")]
    emf_ratio = figures[("emf", "fleece")] / figures[("emf", "powertools")]
    return [
        *rows,
        "",
        f"JWT: fleece {jwt_us / 1000:.3f} ms per token, {jwt_ratio:.1f}x PyJWT's time "
        f"(target < {JWT_TARGET_US / 1000:.0f} ms: "
        f"{'met' if jwt_us < JWT_TARGET_US else 'NOT met'})",
        f"EMF: fleece / Powertools = {emf_ratio:.2f} "
        f"(target <= {EMF_TARGET_RATIO}: {'met' if emf_ratio <= EMF_TARGET_RATIO else 'NOT met'})",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument(
        "--python", default=sys.executable, help="interpreter of the venvs"
    )
    parser.add_argument(
        "--rounds", type=int, default=5, help="processes per configuration"
    )
    parser.add_argument(
        "--repeats", type=int, default=5, help="timed batches per process"
    )
    args = parser.parse_args()

    ensure_environment("bare", ENVIRONMENTS["bare"], args.python)
    ensure_environment("pyjwt", PYJWT, args.python)
    ensure_environment("powertools", ENVIRONMENTS["powertools"], args.python)
    WORK.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [
            str(python_of("pyjwt")),
            str(HERE / "peers.py"),
            "keys",
            "-",
            str(WORK),
            "0",
            "0",
        ],
        check=True,
    )
    versions = subprocess.run(
        [
            str(python_of("pyjwt")),
            "-c",
            "import sys, importlib.metadata as m; print(sys.version.split()[0], "
            "m.version('PyJWT'), m.version('cryptography'))",
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    powertools = subprocess.run(
        [
            str(python_of("powertools")),
            "-c",
            "import importlib.metadata as m; print(m.version('aws-lambda-powertools'))",
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    print(
        f"Python {versions[0]}, PyJWT {versions[1]}, cryptography {versions[2]}, "
        f"aws-lambda-powertools {powertools}; {args.rounds} rounds"
    )
    print("\n".join(table(measure_all(args.rounds, args.repeats))))


if __name__ == "__main__":
    main()
