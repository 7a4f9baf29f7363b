"""Child of run.py: one HTTP client peer, timed against the benchmark's server.

Usage:
  python client.py throughput PEER URL REQUESTS   -> {"requests_per_second": N}
  python client.py cold PEER URL                  -> {"import_ms": A, "first_get_ms": B}

``throughput`` warms the client up (connection open, code paths run), then
times REQUESTS sequential GETs on one kept-alive connection, each answer read
whole. ``cold`` runs in a process that has imported what the Lambda Python
bootstrap imports, and times importing the peer, then importing it, building
its client and making the first GET (what a cold start pays for the first
call). Peers are imported by name, so this file runs in any of the
benchmark's virtual environments.
"""

# What Lambda's Python bootstrap imports, and nothing else before the timing
# (collections.abc comes with logging; typing would not be there on Lambda).
import importlib
import json
import logging  # noqa: F401
import os  # noqa: F401
import sys
import time
import traceback  # noqa: F401
from collections.abc import Callable

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

Get = Callable[[], object]


def fleece_runtime(url: str) -> Get:
    runtime: Any = importlib.import_module("fleece_runtime")
    client = runtime.HttpClient()
    return lambda: client.get(url).content


def requests_session(url: str) -> Get:
    requests: Any = importlib.import_module("requests")
    session = requests.Session()
    return lambda: session.get(url).content


def urllib3_pool(url: str) -> Get:
    urllib3: Any = importlib.import_module("urllib3")
    pool = urllib3.PoolManager()
    return lambda: pool.request("GET", url).data


PEERS: dict[str, tuple[str, Callable[[str], Get]]] = {
    "fleece_runtime": ("fleece_runtime", fleece_runtime),
    "requests": ("requests", requests_session),
    "urllib3": ("urllib3", urllib3_pool),
}


def throughput(peer: str, url: str, requests: int) -> dict[str, float]:
    get = PEERS[peer][1](url)
    for _ in range(200):
        get()
    started = time.perf_counter()
    for _ in range(requests):
        get()
    return {"requests_per_second": requests / (time.perf_counter() - started)}


def cold(peer: str, url: str) -> dict[str, float]:
    module, build = PEERS[peer]
    started = time.perf_counter()
    importlib.import_module(module)
    imported = time.perf_counter()
    build(url)()
    done = time.perf_counter()
    return {
        "import_ms": (imported - started) * 1000,
        "first_get_ms": (done - started) * 1000,
    }


def main() -> None:
    mode, peer, url, *rest = sys.argv[1:]
    if mode == "throughput":
        print(json.dumps(throughput(peer, url, int(rest[0]))))
    else:
        print(json.dumps(cold(peer, url)))


if __name__ == "__main__":
    main()
