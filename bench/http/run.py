"""Benchmark fleece_runtime's HttpClient against requests and urllib3.

One command, ``python bench/http/run.py``: it creates (or reuses) one virtual
environment per peer under ``bench/.venvs/`` (``bare``: the standard library
only, where fleece_runtime runs; ``http-peers``: requests and urllib3 from
PyPI), starts a keep-alive HTTP/1.1 server on 127.0.0.1 in a process of its
own (server.py), and runs every peer side by side in this one run:

- Requests per second: sequential GETs of a small JSON answer on one
  kept-alive connection, each answer read whole: ``HttpClient.get`` (default
  settings: retries, deadline and trace checks included),
  ``requests.Session().get`` and ``urllib3.PoolManager().request``. One
  process per run, peers interleaved, median of the runs.
- Cold cost on Lambda: inside a process that has already imported what
  Lambda's Python bootstrap imports (``importlib, json, logging, os, sys,
  time, traceback``), the time to import the peer, and to import it, build
  its client and make the first GET. Median of many processes.

Not part of the test suite: it needs PyPI on the first run.
"""

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(REPO))

from bench.runtime.run import ensure_environment, python_of  # noqa: E402

ENVIRONMENTS: dict[str, list[str]] = {
    "bare": [],
    "http-peers": ["requests", "urllib3"],
}
# Peer (see client.py) -> (label, environment).
PEERS = {
    "fleece_runtime": ("fleece_runtime HttpClient.get", "bare"),
    "requests": ("requests.Session.get", "http-peers"),
    "urllib3": ("urllib3.PoolManager.request", "http-peers"),
}
REQUESTS_TARGET = "requests.Session.get"


def child_env() -> dict[str, str]:
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "AWS_"))}
    env["PYTHONPATH"] = str(REPO / "runtime_stub")
    return env


def run_client(environment: str, *arguments: str) -> dict[str, float]:
    out = subprocess.run(
        [str(python_of(environment)), str(HERE / "client.py"), *arguments],
        check=True,
        capture_output=True,
        text=True,
        env=child_env(),
    )
    result: dict[str, float] = json.loads(out.stdout)
    return result


def measure(
    url: str, requests: int, runs: int, cold_runs: int
) -> tuple[dict[str, float], dict[str, tuple[float, float]]]:
    """(requests per second, (import ms, import + first GET ms)) per peer label."""
    rates: dict[str, list[float]] = {label: [] for label, _ in PEERS.values()}
    for _ in range(runs):
        for peer, (label, environment) in PEERS.items():
            figures = run_client(environment, "throughput", peer, url, str(requests))
            rates[label].append(figures["requests_per_second"])
    imports: dict[str, list[float]] = {label: [] for label, _ in PEERS.values()}
    firsts: dict[str, list[float]] = {label: [] for label, _ in PEERS.values()}
    for _ in range(cold_runs):
        for peer, (label, environment) in PEERS.items():
            figures = run_client(environment, "cold", peer, url)
            imports[label].append(figures["import_ms"])
            firsts[label].append(figures["first_get_ms"])
    return (
        {label: statistics.median(values) for label, values in rates.items()},
        {
            label: (statistics.median(imports[label]), statistics.median(firsts[label]))
            for label in imports
        },
    )


def table(rates: dict[str, float], cold: dict[str, tuple[float, float]]) -> list[str]:
    reference = rates[REQUESTS_TARGET]
    reference_import = cold[REQUESTS_TARGET][0]
    rows = [
        "| client | requests/s | x requests | import ms | import + first GET ms |",
        "|---|---:|---:|---:|---:|",
    ]
    for label, rate in rates.items():
        imported, first = cold[label]
        rows.append(
            f"| {label} | {rate:,.0f} | {rate / reference:.2f} "
            f"| {imported:.1f} | {first:.1f} |"
        )
    ours = PEERS["fleece_runtime"][0]
    rows += [
        "",
        f"HttpClient.get / requests.Session.get: {rates[ours] / reference:.2f} "
        f"(target >= 1)",
        f"import cost of fleece_runtime / requests, over Lambda's bootstrap imports: "
        f"{cold[ours][0] / reference_import:.2f} (target < 1); import and first GET: "
        f"{cold[ours][1] / cold[REQUESTS_TARGET][1]:.2f}",
    ]
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument(
        "--python", default=sys.executable, help="interpreter of the venvs"
    )
    parser.add_argument("--requests", type=int, default=5000, help="GETs per run")
    parser.add_argument(
        "--runs", type=int, default=7, help="runs per throughput figure"
    )
    parser.add_argument(
        "--cold-runs", type=int, default=30, help="processes per cold figure"
    )
    args = parser.parse_args()

    for name, requirements in ENVIRONMENTS.items():
        ensure_environment(name, requirements, args.python)
    subprocess.run(
        [str(python_of("bare")), "-m", "compileall", "-q", str(REPO / "runtime_stub")],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    server = subprocess.Popen(
        [str(python_of("bare")), str(HERE / "server.py")],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        url = f"http://127.0.0.1:{int(server.stdout.readline())}/orders/7"
        rates, cold = measure(url, args.requests, args.runs, args.cold_runs)
    finally:
        assert server.stdin is not None
        server.stdin.close()
        server.wait(timeout=10)
    versions = {
        name: subprocess.run(
            [
                str(python_of("http-peers")),
                "-c",
                f"import {name}; print({name}.__version__)",
            ],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
        for name in ("requests", "urllib3")
    }
    print(
        f"\nPython {sys.version.split()[0]}; requests {versions['requests']}, "
        f"urllib3 {versions['urllib3']}; throughput: median of {args.runs} runs of "
        f"{args.requests:,} GETs; cold: median of {args.cold_runs} processes\n"
    )
    print("\n".join(table(rates, cold)))


if __name__ == "__main__":
    main()
