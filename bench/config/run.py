"""Benchmark fleece_config.py: its import cost at cold start, and how soon its
first load gives up when KMS never answers.

One command, ``python bench/config/run.py [--runs N]``, prints two tables:

- Import cost over Lambda's bootstrap imports (``importlib, json, logging,
  os, sys, time, traceback``), bytecode compiled: the cumulative microseconds
  ``python -X importtime`` reports for the module (median of N processes), and
  the whole process's extra wall time (median of N paired runs: bootstrap
  alone, then bootstrap + the module). Peers, side by side: fleece_config.py
  as fleece renders it (the stub, and a 100 KB config), the module fleece 1.x
  rendered (its imports ``base64, boto3, json``; its decryption at import left
  out, which would need KMS) and Powertools' parameters utility (from
  ``bench/.venvs/powertools``, made with pip on the first run; skipped, with
  the reason, when it cannot be made).
- Against a KMS that accepts connections and never answers (a TCP server on
  127.0.0.1): how long the first ``load_config()`` takes to fail, for a few
  deadlines, next to fleece 1.x's module, which has no timeout of its own
  (stopped after ``--cap`` seconds).

Not part of the test suite; run it with the development environment
(``.ci/venv/bin/python``), which has fleece and the tests' helpers.
"""

import argparse
import base64
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path[:0] = [str(REPO / "generator"), str(REPO)]

from tests.config.conftest import SilentServer  # noqa: E402  (the tests' own)

WORK = REPO / "bench" / ".work" / "config"
POWERTOOLS = REPO / "bench" / ".venvs" / "powertools"
BOOTSTRAP = "import importlib, json, logging, os, sys, time, traceback"
ORIGINAL_MODULE = """\
ENCRYPTED_CONFIG = {chunks!r}
import base64
import boto3
import json

def load_config():
    config_json = ''
    kms = boto3.client('kms')
    for buffer in ENCRYPTED_CONFIG:
        r = kms.decrypt(CiphertextBlob=base64.b64decode(buffer.encode('utf-8')))
        config_json += r['Plaintext'].decode('utf-8')
    return json.loads(config_json)
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=31)
    parser.add_argument("--cap", type=float, default=10.0)
    args = parser.parse_args()
    folders = _modules()
    rows = [
        ("fleece_config (stub)", sys.executable, folders["stub"], "fleece_config"),
        (
            "fleece_config (100 KB config)",
            sys.executable,
            folders["big"],
            "fleece_config",
        ),
        (
            "fleece 1.x fleece_config (no decrypt)",
            sys.executable,
            folders["original"],
            "fleece_config",
        ),
    ]
    powertools = _powertools()
    if isinstance(powertools, Path):
        rows.append(
            (
                "Powertools parameters",
                str(powertools),
                WORK,
                "aws_lambda_powertools.utilities.parameters",
            )
        )
    print(f"Import cost over Lambda's bootstrap imports, .pyc, median of {args.runs}")
    print(f"{'module':40} {'importtime us':>14} {'process +ms':>12} {'ratio':>7}")
    base = None
    for label, python, folder, module in rows:
        cumulative = _importtime(python, folder, module, args.runs)
        extra = _process_extra(python, folder, module, args.runs)
        base = base or cumulative
        print(f"{label:40} {cumulative:14.0f} {extra:12.2f} {cumulative / base:6.1f}x")
    if not isinstance(powertools, Path):
        print(f"{'Powertools parameters':40} skipped: {powertools}")
    print()
    print("First load_config() against a KMS that never answers")
    with SilentServer() as kms:
        for label, folder, call in [
            ("fleece_config, timeout=1", folders["big"], "load_config(timeout=1)"),
            ("fleece_config, default (5 s)", folders["big"], "load_config()"),
            (
                "fleece_config, context with 1.5 s left",
                folders["big"],
                "load_config(Context())",
            ),
            ("fleece 1.x fleece_config", folders["original"], "load_config()"),
        ]:
            took, outcome = _first_load(folder, call, kms.url, args.cap)
            print(f"{label:40} {took:6.2f} s  {outcome}")


def _modules() -> dict[str, Path]:
    """Folders holding each module, compiled."""
    from fleece.config.module import EncryptedPayload, render_python_module

    shutil.rmtree(WORK, ignore_errors=True)
    chunks = tuple(base64.b64encode(os.urandom(4096 + 200)).decode() for _ in range(14))
    arn = "arn:aws:kms:us-east-1:123456789012:key/00000000-0000-0000-0000-000000000000"
    texts = {
        "stub": (REPO / "runtime_stub" / "fleece_config.py").read_text(),
        "big": render_python_module(
            EncryptedPayload("prod", arn, "0" * 64, chunks), "0" * 64
        ),
        "original": ORIGINAL_MODULE.format(chunks=list(chunks)),
    }
    folders = {}
    for name, text in texts.items():
        folder = WORK / name
        folder.mkdir(parents=True)
        (folder / "fleece_config.py").write_text(text)
        subprocess.run(
            [sys.executable, "-m", "compileall", "-q", str(folder)], check=True
        )
        folders[name] = folder
    return folders


def _powertools() -> Path | str:
    python = POWERTOOLS / "bin" / "python"
    if not python.exists():
        try:
            subprocess.run([sys.executable, "-m", "venv", str(POWERTOOLS)], check=True)
            subprocess.run(
                [
                    str(python),
                    "-m",
                    "pip",
                    "install",
                    "-q",
                    "aws-lambda-powertools",
                    "boto3",
                ],
                check=True,
                capture_output=True,
            )
        except subprocess.CalledProcessError as error:
            shutil.rmtree(POWERTOOLS, ignore_errors=True)
            return f"pip could not install it ({error.returncode})"
    subprocess.run(
        [str(python), "-m", "compileall", "-q", str(POWERTOOLS)], check=False
    )
    return python


def _importtime(python: str, folder: Path, module: str, runs: int) -> float:
    samples = []
    for _ in range(runs):
        result = subprocess.run(
            [python, "-X", "importtime", "-c", f"{BOOTSTRAP}; import {module}"],
            cwd=folder,
            capture_output=True,
            text=True,
            check=True,
        )
        line = next(
            line
            for line in reversed(result.stderr.splitlines())
            if line.endswith(f"| {module}")
        )
        samples.append(float(line.split("|")[1]))
    return statistics.median(samples)


def _process_extra(python: str, folder: Path, module: str, runs: int) -> float:
    """Median over paired runs of (bootstrap + module) - (bootstrap), in ms."""
    differences = []
    for _ in range(runs):
        times = []
        for code in (BOOTSTRAP, f"{BOOTSTRAP}; import {module}"):
            start = time.perf_counter()
            subprocess.run([python, "-c", code], cwd=folder, check=True)
            times.append(time.perf_counter() - start)
        differences.append((times[1] - times[0]) * 1000)
    return statistics.median(differences)


def _first_load(
    folder: Path, call: str, endpoint: str, cap: float
) -> tuple[float, str]:
    code = (
        "import json, time, fleece_config\n"
        "class Context:\n"
        "    def get_remaining_time_in_millis(self): return 1500\n"
        "start = time.monotonic()\n"
        "try:\n"
        f"    fleece_config.{call}\n"
        "    outcome = 'loaded'\n"
        "except Exception as error:\n"
        "    outcome = type(error).__name__\n"
        "print(json.dumps([time.monotonic() - start, outcome]))\n"
    )
    env = {
        **os.environ,
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    start = time.monotonic()
    try:
        result = subprocess.run(
            [sys.executable, "-c", code],
            cwd=folder,
            env=env,
            capture_output=True,
            text=True,
            timeout=cap,
        )
    except subprocess.TimeoutExpired:
        return time.monotonic() - start, f"still waiting: stopped after {cap:.0f} s"
    took, outcome = json.loads(result.stdout)
    return float(took), str(outcome)


if __name__ == "__main__":
    main()
