"""Benchmark fleece_runtime against its peers: cold import time and log throughput.

One command, ``python bench/runtime/run.py``: it creates one virtual
environment per peer under ``bench/.venvs/`` (pip-installing from PyPI on the
first run, reused afterwards), runs every measurement side by side in this one
run, and prints a table of figures and ratios.

- Cold import: the wall time of a whole ``python -c "import X"`` process,
  median of many runs, minus the median of ``python -c pass`` in the same
  environment; measured with the peers' bytecode compiled, and on copies of
  the peers without any bytecode, writing disabled (what Lambda does with a
  package shipped without .pyc: /var/task is read-only). The standard library
  keeps its bytecode in both cases, as in the Lambda runtime.
- Import cost on Lambda: the time ``import fleece_runtime`` takes inside a
  process that has already imported what Lambda's Python bootstrap imports
  (``importlib, json, logging, os, sys, time, traceback``), timed in that
  process, median of many processes; with and without the file's bytecode.
- Throughput: JSON log lines per second to /dev/null, same event and fields,
  median of several runs, each run a process of its own.

Every configuration runs once per round, rounds repeated: load from other
processes on the machine then weighs on all peers alike.

Not part of the test suite: it needs PyPI and takes a minute or two.
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
VENVS = REPO / "bench" / ".venvs"
WORK = REPO / "bench" / ".work" / "runtime"

# Environment name -> pip requirements (empty: standard library only).
ENVIRONMENTS: dict[str, list[str]] = {
    "bare": [],
    "powertools": ["aws-lambda-powertools"],
    "fleece121": ["fleece==1.2.1"],
}


@dataclass(frozen=True)
class ImportPeer:
    label: str
    environment: str
    statement: str


POWERTOOLS_IMPORT = "Powertools aws_lambda_powertools.logging"
IMPORT_PEERS = [
    ImportPeer("bare python -c pass", "bare", "pass"),
    ImportPeer("fleece_runtime", "bare", "import fleece_runtime"),
    # The part of fleece_runtime's cost that is the standard library's.
    ImportPeer("stdlib logging + json (reference)", "bare", "import logging, json"),
    ImportPeer(POWERTOOLS_IMPORT, "powertools", "import aws_lambda_powertools.logging"),
    ImportPeer("fleece 1.2.1 fleece.log", "fleece121", "import fleece.log"),
]

# What the Lambda Python runtime's bootstrap has imported before the handler.
BOOTSTRAP = "importlib, json, logging, os, sys, time, traceback"
# Prints the milliseconds `import fleece_runtime` takes after the bootstrap's imports.
OVER_BOOTSTRAP = (
    f"import {BOOTSTRAP}\n"
    "started = time.perf_counter()\n"
    "import fleece_runtime\n"
    "print((time.perf_counter() - started) * 1000)\n"
)
OVER_BOOTSTRAP_TARGET_MS = 5.0

# Throughput peer (see log_throughput.py) -> (label, environment).
LOG_PEERS = {
    "fleece_runtime": ("fleece_runtime Logger", "bare"),
    "powertools": ("Powertools Logger", "powertools"),
    "fleece_original": ("fleece 1.2.1 logger", "fleece121"),
    "stdlib": ("stdlib logging + json.dumps", "bare"),
}


def python_of(environment: str, compiled: bool = True) -> Path:
    """The interpreter of an environment: the venv, or its copy without .pyc."""
    root = VENVS / environment if compiled else WORK / "no-pyc" / environment
    return root / "bin" / "python"


def runtime_dir(compiled: bool) -> Path:
    return WORK / ("pyc" if compiled else "no-pyc") / "fleece_runtime"


def ensure_environment(name: str, requirements: list[str], base_python: str) -> None:
    """Create (or reuse) the virtual environment ``name`` with ``requirements``."""
    venv = VENVS / name
    marker = venv / "fleece-bench.json"
    wanted = {"python": base_python, "requirements": requirements}
    if marker.exists() and json.loads(marker.read_text()) == wanted:
        return
    shutil.rmtree(venv, ignore_errors=True)
    print(
        f"creating {venv.relative_to(REPO)} ({', '.join(requirements) or 'stdlib only'})"
    )
    subprocess.run([base_python, "-m", "venv", str(venv)], check=True)
    if requirements:
        subprocess.run(
            [str(python_of(name)), "-m", "pip", "install", "--quiet", *requirements],
            check=True,
        )
    marker.write_text(json.dumps(wanted))


def prepare_code() -> None:
    """Each peer twice, side by side: compiled, and a copy without bytecode."""
    shutil.rmtree(WORK, ignore_errors=True)
    for compiled in (True, False):
        runtime_dir(compiled).mkdir(parents=True)
        shutil.copy2(REPO / "runtime_stub" / "fleece_runtime.py", runtime_dir(compiled))
    no_pyc = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in ENVIRONMENTS:
        shutil.copytree(
            VENVS / name, WORK / "no-pyc" / name, symlinks=True, ignore=no_pyc
        )
    for root in [runtime_dir(True), *(VENVS / name for name in ENVIRONMENTS)]:
        subprocess.run(
            [sys.executable, "-m", "compileall", "-q", "-j", "0", str(root)],
            check=True,
            stdout=subprocess.DEVNULL,
        )


def child_env(compiled: bool) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env["PYTHONPATH"] = str(runtime_dir(compiled))
    env["PYTHONDONTWRITEBYTECODE"] = "1"  # the copies stay without bytecode
    return env


def run_child(environment: str, script: Path, *args: object, **env: str) -> Any:
    """What ``script ARGS`` prints as JSON, run by the Python of ``environment``
    with the checkout's fleece_runtime importable and nothing else of ours
    (plus the variables ``env``)."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    environ["PYTHONPATH"] = str(REPO / "runtime_stub")
    environ.update(env)
    out = subprocess.run(
        [str(python_of(environment)), str(script), *map(str, args)],
        check=True,
        capture_output=True,
        text=True,
        env=environ,
    )
    return json.loads(out.stdout)


def time_imports(runs: int) -> dict[tuple[str, bool], list[float]]:
    """Milliseconds per whole process, keyed by (peer label, compiled).

    ``baseline:<environment>`` keys hold the ``python -c pass`` runs.
    """
    configurations = [(f"baseline:{name}", name, "pass") for name in ENVIRONMENTS]
    configurations += [(p.label, p.environment, p.statement) for p in IMPORT_PEERS]
    times: dict[tuple[str, bool], list[float]] = {}
    for _ in range(runs):
        for compiled in (True, False):
            env = child_env(compiled)
            for key, environment, statement in configurations:
                python = str(python_of(environment, compiled))
                started = time.perf_counter()
                subprocess.run([python, "-c", statement], check=True, env=env)
                elapsed = (time.perf_counter() - started) * 1000
                times.setdefault((key, compiled), []).append(elapsed)
    return times


def time_import_over_bootstrap(runs: int) -> dict[bool, list[float]]:
    """Milliseconds of ``import fleece_runtime`` after the bootstrap's imports."""
    times: dict[bool, list[float]] = {True: [], False: []}
    for _ in range(runs):
        for compiled in (True, False):
            out = subprocess.run(
                [str(python_of("bare", compiled)), "-c", OVER_BOOTSTRAP],
                check=True,
                capture_output=True,
                text=True,
                env=child_env(compiled),
            )
            times[compiled].append(float(out.stdout))
    return times


def log_throughput(lines: int, repeats: int) -> dict[str, float]:
    """Median lines per second of each throughput peer."""
    figures: dict[str, list[float]] = {label: [] for label, _ in LOG_PEERS.values()}
    for _ in range(repeats):
        for peer, (label, environment) in LOG_PEERS.items():
            command = [str(python_of(environment)), str(HERE / "log_throughput.py")]
            out = subprocess.run(
                [*command, peer, str(lines), "1"],
                check=True,
                capture_output=True,
                text=True,
                env=child_env(compiled=True),
            )
            figures[label] += json.loads(out.stdout)["lines_per_second"]
    return {label: statistics.median(values) for label, values in figures.items()}


def import_table(times: dict[tuple[str, bool], list[float]]) -> list[str]:
    rows = [
        "| import | with .pyc: process ms | above bare ms "
        "| without .pyc: process ms | above bare ms |",
        "|---|---:|---:|---:|---:|",
    ]
    above: dict[tuple[str, bool], float] = {}
    for peer in IMPORT_PEERS:
        cells = []
        for compiled in (True, False):
            total = statistics.median(times[(peer.label, compiled)])
            bare = statistics.median(times[(f"baseline:{peer.environment}", compiled)])
            above[(peer.label, compiled)] = total - bare
            cost = "-" if peer.statement == "pass" else f"{total - bare:.1f}"
            cells += [f"{total:.1f}", cost]
        rows.append(f"| {peer.label} | " + " | ".join(cells) + " |")
    rows.append("")
    for compiled in (True, False):
        ratio = (
            above[("fleece_runtime", compiled)] / above[(POWERTOOLS_IMPORT, compiled)]
        )
        rows.append(
            f"fleece_runtime import cost / Powertools logging import cost "
            f"({'with' if compiled else 'without'} .pyc): {ratio:.2f} (target <= 0.2)"
        )
    return rows


def bootstrap_table(times: dict[bool, list[float]]) -> list[str]:
    rows = [
        f"| import fleece_runtime after `import {BOOTSTRAP}` | median ms | min ms |",
        "|---|---:|---:|",
    ]
    for compiled in (True, False):
        label = "with .pyc" if compiled else "without .pyc"
        values = times[compiled]
        rows.append(
            f"| {label} | {statistics.median(values):.2f} | {min(values):.2f} |"
        )
    with_pyc = statistics.median(times[True])
    rows += [
        "",
        f"fleece_runtime import over Lambda's bootstrap, with .pyc: {with_pyc:.2f} ms "
        f"(target < {OVER_BOOTSTRAP_TARGET_MS:.0f} ms)",
    ]
    return rows


def throughput_table(figures: dict[str, float]) -> list[str]:
    powertools = figures["Powertools Logger"]
    stdlib = figures["stdlib logging + json.dumps"]
    rows = [
        "| logger | lines/s | x Powertools | x stdlib + json.dumps |",
        "|---|---:|---:|---:|",
    ]
    for label, value in figures.items():
        rows.append(
            f"| {label} | {value:,.0f} | {value / powertools:.2f} | {value / stdlib:.2f} |"
        )
    ours = figures["fleece_runtime Logger"]
    rows += [
        "",
        f"fleece_runtime / Powertools: {ours / powertools:.2f} (target >= 2)",
        f"fleece_runtime / stdlib + json.dumps: {ours / stdlib:.2f} (target >= 0.8)",
    ]
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument(
        "--python", default=sys.executable, help="interpreter of the venvs"
    )
    parser.add_argument("--runs", type=int, default=40, help="rounds of import runs")
    parser.add_argument("--lines", type=int, default=50_000, help="log lines per run")
    parser.add_argument("--repeats", type=int, default=7, help="runs per log figure")
    args = parser.parse_args()

    for name, requirements in ENVIRONMENTS.items():
        ensure_environment(name, requirements, args.python)
    prepare_code()
    version = subprocess.run(
        [str(python_of("bare")), "-c", "import sys; print(sys.version.split()[0])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    imports = time_imports(args.runs)
    over_bootstrap = time_import_over_bootstrap(args.runs)
    figures = log_throughput(args.lines, args.repeats)
    shutil.rmtree(WORK / "no-pyc")  # copies of whole venvs: large, done with

    print(
        f"\nPython {version}; imports: median of {args.runs} processes each; "
        f"logging: median of {args.repeats} runs of {args.lines:,} lines\n"
    )
    print("\n".join(import_table(imports)))
    print()
    print("\n".join(bootstrap_table(over_bootstrap)))
    print()
    print("\n".join(throughput_table(figures)))


if __name__ == "__main__":
    main()
