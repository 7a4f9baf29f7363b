"""Benchmark fleece_runtime's Router against Powertools' API Gateway resolvers.

One command, ``python bench/router/run.py``: it creates (or reuses) the
virtual environments of ``bench/runtime/run.py`` under ``bench/.venvs/``
(``bare``: the standard library, fleece_runtime on the path; ``powertools``:
aws-lambda-powertools from PyPI on the first run), and measures, side by
side in one run, the per-invocation overhead of a routed API Gateway request
(see ``router_overhead.py``):

- REST API events: fleece_runtime's ``Router`` against Powertools'
  ``APIGatewayRestResolver``; HTTP API events: against its
  ``APIGatewayHttpResolver``;
- apps of 50 routes and of 1 route, the same routes for both;
- also fleece inside an invocation already set up (its routing alone: a
  handler decorated with ``inject_request_ids_into_environment`` pays the
  rest in the decorator), and fleece logging one request line per call (to
  /dev/null).

Each configuration runs once per round in a process of its own, rounds
repeated, so load from other processes weighs on all alike. Figures are the
median over rounds of each process's best. Target: fleece's overhead at
most a third of Powertools'.
"""

import argparse
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(REPO))

from bench.runtime.run import (  # noqa: E402 (the repository must be on the path first)
    ENVIRONMENTS,
    ensure_environment,
    python_of,
    run_child,
)

TARGET_RATIO = 1 / 3
# (label, peer of router_overhead.py, environment)
PEERS = [
    ("fleece_runtime Router", "fleece", "bare"),
    (
        "fleece_runtime Router, routing only (handler decorated)",
        "fleece-decorated",
        "bare",
    ),
    ("fleece_runtime Router, request line logged", "fleece-log", "bare"),
    ("Powertools resolver", "powertools", "powertools"),
]
KINDS = {
    "rest": "REST API (APIGatewayRestResolver)",
    "http": "HTTP API (APIGatewayHttpResolver)",
}
ROUTE_COUNTS = (50, 1)


def measure(rounds: int, calls: int, repeats: int) -> dict[tuple[str, str, int], float]:
    """Median microseconds of overhead per (peer, kind, routes)."""
    figures: dict[tuple[str, str, int], list[float]] = {}
    for _ in range(rounds):
        for kind in KINDS:
            for routes in ROUTE_COUNTS:
                for _, peer, environment in PEERS:
                    out = run_child(
                        environment,
                        HERE / "router_overhead.py",
                        peer,
                        kind,
                        routes,
                        calls,
                        repeats,
                    )
                    best = min(out["overhead_us"])
                    figures.setdefault((peer, kind, routes), []).append(best)
    return {key: statistics.median(values) for key, values in figures.items()}


def table(figures: dict[tuple[str, str, int], float]) -> list[str]:
    rows = [
        "| events | routes | router | overhead µs/call | x Powertools |",
        "|---|---:|---|---:|---:|",
    ]
    verdicts = []
    for kind, kind_label in KINDS.items():
        for routes in ROUTE_COUNTS:
            powertools = figures[("powertools", kind, routes)]
            for label, peer, _ in PEERS:
                value = figures[(peer, kind, routes)]
                rows.append(
                    f"| {kind_label} | {routes} | {label} | {value:.1f} | {value / powertools:.2f} |"
                )
            ratio = figures[("fleece", kind, routes)] / powertools
            verdicts.append(
                f"{kind_label}, {routes} routes: fleece / Powertools = {ratio:.2f} "
                f"(target <= {TARGET_RATIO:.2f}: {'met' if ratio <= TARGET_RATIO else 'NOT met'})"
            )
    return [*rows, "", *verdicts]


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument(
        "--python", default=sys.executable, help="interpreter of the venvs"
    )
    parser.add_argument(
        "--rounds", type=int, default=5, help="processes per configuration"
    )
    parser.add_argument("--calls", type=int, default=2000, help="calls per timed batch")
    parser.add_argument(
        "--repeats", type=int, default=5, help="timed batches per process"
    )
    args = parser.parse_args()

    for name in ("bare", "powertools"):
        ensure_environment(name, ENVIRONMENTS[name], args.python)
    versions = subprocess.run(
        [
            str(python_of("powertools")),
            "-c",
            "import sys, importlib.metadata as m; "
            "print(sys.version.split()[0], m.version('aws-lambda-powertools'))",
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    figures = measure(args.rounds, args.calls, args.repeats)
    print(
        f"\nPython {versions[0]}, aws-lambda-powertools {versions[1]}; median of "
        f"{args.rounds} processes, each the best of {args.repeats} x 3 batches of {args.calls} calls\n"
    )
    print("\n".join(table(figures)))


if __name__ == "__main__":
    main()
