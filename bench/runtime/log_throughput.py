"""Child of run.py: JSON log lines per second of one peer, written to /dev/null.

Usage: python log_throughput.py PEER LINES REPEATS. Prints one JSON object,
``{"lines_per_second": [...]}``, one figure per repeat. Every peer logs the same
event with the same two fields; peers are imported by name so this file runs
in any of the benchmark's virtual environments.
"""

import importlib
import json
import logging
import os
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

LogOne = Callable[[int], None]


def fleece_runtime(devnull: Any) -> LogOne:
    runtime: Any = importlib.import_module("fleece_runtime")
    runtime.setup_root_logger(stream=devnull)
    logger = runtime.get_logger("bench")
    return lambda i: logger.info("order_saved", order_id=i, user="ann")


def powertools(devnull: Any) -> LogOne:
    module: Any = importlib.import_module("aws_lambda_powertools.logging")
    logger = module.Logger(
        service="bench", logger_handler=logging.StreamHandler(devnull)
    )
    return lambda i: logger.info("order_saved", extra={"order_id": i, "user": "ann"})


def fleece_original(devnull: Any) -> LogOne:
    log: Any = importlib.import_module("fleece.log")
    log.setup_root_logger(level=logging.INFO, stream=devnull)
    logger = log.get_logger("bench")
    return lambda i: logger.info("order_saved", order_id=i, user="ann")


_RECORD_ATTRIBUTES = frozenset(
    logging.LogRecord("", 0, "", 0, "", (), None).__dict__
) | {
    "message",
    "asctime",
}


class BareJsonFormatter(logging.Formatter):
    """What a project writes by hand: the record's core fields and extras, dumped."""

    def format(self, record: logging.LogRecord) -> str:
        line = {
            "timestamp": datetime.fromtimestamp(record.created, UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname,
            "logger": record.name,
            "event": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _RECORD_ATTRIBUTES:
                line[key] = value
        return json.dumps(line, default=str)


def stdlib(devnull: Any) -> LogOne:
    handler = logging.StreamHandler(devnull)
    handler.setFormatter(BareJsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
    logger = logging.getLogger("bench")
    return lambda i: logger.info("order_saved", extra={"order_id": i, "user": "ann"})


PEERS: dict[str, Callable[[Any], LogOne]] = {
    "fleece_runtime": fleece_runtime,
    "powertools": powertools,
    "fleece_original": fleece_original,
    "stdlib": stdlib,
}


def main() -> None:
    peer, lines, repeats = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    with open(os.devnull, "w") as devnull:
        log_one = PEERS[peer](devnull)
        for i in range(min(lines, 1000)):  # warm up caches and lazy imports
            log_one(i)
        figures = []
        for _ in range(repeats):
            started = time.perf_counter()
            for i in range(lines):
                log_one(i)
            figures.append(lines / (time.perf_counter() - started))
    print(json.dumps({"lines_per_second": figures}))


if __name__ == "__main__":
    main()
