"""`fleece build` against `sam build` on the same service, side by side.

    python bench/build/run.py [--import-runs 40] [--warm-runs 5]

Installs the AWS SAM CLI of ``locks/sam.txt`` into its own venv
(``bench/.venvs/sam``, once), needs a Python 3.12 (PATH, pyenv or uv: the
runtime's Python, for SAM's pip and for the import timings) and PyPI. For each
requirement set (requests + pydantic; numpy) it generates a python3.12 x86_64
service under ``bench/.work/`` whose handler module imports them, and measures:

- cold start: the wall time of a fresh ``python3.12 -I -B`` that does the
  Lambda Python runtime's bootstrap imports (importlib, json, logging, os,
  sys, time, traceback), then imports the handler module from the unpacked
  artefact (read-only: -B writes no bytecode), minus the same process without
  the handler import; the median of the paired differences of many rounds,
  the artefacts taking turns in each round. Artefacts: fleece's zip (checked
  hash-based bytecode), the same files with unchecked-hash bytecode (what the
  check costs), fleece's zip built with --no-compile, and SAM's build folder.
- builds: cold (empty pip, fleece and SAM caches) and warm (median of
  rebuilds after a one-line handler change: fleece's cache against
  ``sam build --cached``), wall time and CPU time (which a busy machine
  inflates less).
- zip size: fleece's zip against SAM's build folder zipped by SAM's own
  packaging code (what ``sam deploy`` uploads).
- the deflate level: size and time of the whole artefact at 1, 6 and 9.

Targets (issue 16): import cost <= 0.6x SAM's; warm rebuild <= 0.3 s and
<= 0.2x ``sam build --cached``; zip no larger than SAM's. Exit status 0 when
all are met.
"""

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from fleece.build.bytecode import Interpreter, find_interpreter
from fleece.build.ziparchive import write_zip

ROOT = Path(__file__).resolve().parents[2]
VENV = ROOT / "bench" / ".venvs" / "sam"
WORK = ROOT / "bench" / ".work" / "build"
BOOTSTRAP = "import importlib, json, logging, os, sys, time, traceback"
REQUIREMENT_SETS = {
    "requests + pydantic": ["requests", "pydantic"],
    "numpy": ["numpy"],
}

SAM_TEMPLATE = """\
AWSTemplateFormatVersion: "2010-09-09"
Transform: AWS::Serverless-2016-10-31
Resources:
  Function:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: src/
      Handler: bench_demo.handler.handler
      Runtime: python3.12
      Architectures: [x86_64]
"""

SAM_ZIP = """\
import sys
from samcli.lib.package.utils import make_zip
print(make_zip(sys.argv[1], sys.argv[2]))
"""

UNCHECK = """\
import py_compile, sys
from pathlib import Path
root = Path(sys.argv[1])
for source in root.rglob("*.py"):
    cached = source.parent / "__pycache__" / f"{source.stem}.{sys.implementation.cache_tag}.pyc"
    if cached.exists():
        py_compile.compile(str(source), cfile=str(cached), dfile=str(source.relative_to(root)),
                           invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH)
"""


@dataclass
class Results:
    name: str
    cold: dict[str, float] = field(default_factory=dict)
    warm: dict[str, float] = field(default_factory=dict)
    warm_cpu: dict[str, float] = field(default_factory=dict)
    imports: dict[str, float] = field(default_factory=dict)
    sizes: dict[str, int] = field(default_factory=dict)
    levels: list[tuple[int, int, float]] = field(default_factory=list)


def sam_cli() -> Path:
    sam = VENV / "bin" / "sam"
    if not sam.exists():
        print(f"installing the SAM CLI of locks/sam.txt into {VENV} ...", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
        pip = [str(VENV / "bin" / "python"), "-m", "pip", "install", "--quiet"]
        subprocess.run([*pip, "--require-hashes", "--no-deps", "-r", str(ROOT / "locks" / "sam.txt")], check=True)
    return sam


def python312() -> Interpreter:
    found = find_interpreter("3.12", Path(tempfile.mkdtemp()) / "interpreters.json")
    if found is None:
        sys.exit("the benchmark needs a Python 3.12 (uv python install 3.12)")
    return found


def make_service(folder: Path, requirements: list[str]) -> Path:
    service = folder / "bench-demo"
    subprocess.run(
        [sys.executable, "-m", "fleece", "new", "bench-demo", str(service), "--defaults", "--no-git"],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    (service / "src" / "requirements.txt").write_text("\n".join(requirements) + "\n")
    handler = service / "src" / "bench_demo" / "handler.py"
    imports = "".join(f"import {name}  # noqa: F401\n" for name in requirements)
    handler.write_text(imports + handler.read_text())
    (service / "template.sam.yaml").write_text(SAM_TEMPLATE)
    return service


def timed(command: list[str], cwd: Path, env: dict[str, str]) -> float:
    return timed_with_cpu(command, cwd, env)[0]


def timed_with_cpu(command: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, float]:
    """Wall and CPU seconds (user + system, the command and its children)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(command, cwd=cwd, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def edit_handler(service: Path, n: int) -> None:
    with (service / "src" / "bench_demo" / "handler.py").open("a") as handler:
        handler.write(f"# edit {n}\n")


def unpack(archive: Path, folder: Path) -> Path:
    shutil.rmtree(folder, ignore_errors=True)
    with zipfile.ZipFile(archive) as opened:
        opened.extractall(folder)
    return folder


def import_costs(python: str, tasks: dict[str, Path], runs: int) -> dict[str, float]:
    """Median over rounds of (bootstrap + handler import) - (bootstrap alone)."""

    def once(code: str) -> float:
        start = time.perf_counter()
        subprocess.run([python, "-I", "-B", "-c", code], check=True)
        return time.perf_counter() - start

    differences: dict[str, list[float]] = {name: [] for name in tasks}
    for _ in range(runs):
        for name, task in tasks.items():
            base = once(BOOTSTRAP)
            code = f"{BOOTSTRAP}; sys.path.insert(0, {str(task)!r}); import bench_demo.handler"
            differences[name].append(once(code) - base)
    return {name: statistics.median(values) for name, values in differences.items()}


def measure(name: str, requirements: list[str], args: argparse.Namespace, sam: Path, python: Interpreter) -> Results:
    results = Results(name)
    work = WORK / name.replace(" ", "").replace("+", "-")
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    service = make_service(work, requirements)
    caches = work / "caches"
    base = {**os.environ, "SAM_CLI_TELEMETRY": "0", "PATH": f"{Path(python.path).parent}:{os.environ['PATH']}"}
    fleece_env = {**base, "PIP_CACHE_DIR": str(caches / "pip-fleece"), "FLEECE_CACHE_DIR": str(caches / "fleece")}
    sam_env = {**base, "PIP_CACHE_DIR": str(caches / "pip-sam")}
    fleece_cmd = [sys.executable, "-m", "fleece", "build", str(service)]
    sam_cmd = [str(sam), "build", "-t", "template.sam.yaml", "--cached", "--cache-dir", str(caches / "sam")]
    sam_cmd += ["--build-dir", ".aws-sam/build"]
    print(f"{name}: cold builds ...", flush=True)
    results.cold["fleece build"] = timed(fleece_cmd, service, fleece_env)
    results.cold["sam build"] = timed(sam_cmd, service, sam_env)
    print(f"{name}: warm builds ...", flush=True)
    warm: dict[str, list[tuple[float, float]]] = {"fleece build": [], "sam build --cached": []}
    for n in range(args.warm_runs):
        edit_handler(service, n)
        warm["fleece build"].append(timed_with_cpu(fleece_cmd, service, fleece_env))
        warm["sam build --cached"].append(timed_with_cpu(sam_cmd, service, sam_env))
    results.warm = {tool: statistics.median(w for w, _ in runs) for tool, runs in warm.items()}
    results.warm_cpu = {tool: statistics.median(c for _, c in runs) for tool, runs in warm.items()}

    fleece_zip = service / "dist" / "lambda_function.zip"
    plain_zip = work / "no-bytecode" / "lambda_function.zip"
    timed([*fleece_cmd, "--no-compile", "--target", str(plain_zip.parent)], service, fleece_env)
    sam_zip = Path(
        subprocess.run(
            [str(VENV / "bin" / "python"), "-c", SAM_ZIP, str(work / "sam-function"), str(service / ".aws-sam/build/Function")],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
    )
    results.sizes = {
        "fleece build": fleece_zip.stat().st_size,
        "fleece build --no-compile": plain_zip.stat().st_size,
        "sam build (zipped by SAM)": sam_zip.stat().st_size,
    }

    print(f"{name}: cold-start imports ...", flush=True)
    unchecked = unpack(fleece_zip, work / "task-unchecked")
    subprocess.run([python.path, "-I", "-c", UNCHECK, str(unchecked)], check=True)
    tasks = {
        "fleece build (checked-hash .pyc)": unpack(fleece_zip, work / "task-fleece"),
        "fleece build, unchecked-hash .pyc": unchecked,
        "fleece build --no-compile": unpack(plain_zip, work / "task-plain"),
        "sam build": service / ".aws-sam" / "build" / "Function",
    }
    results.imports = import_costs(python.path, tasks, args.import_runs)

    files = {
        p.relative_to(tasks["fleece build (checked-hash .pyc)"]).as_posix(): p
        for p in sorted(tasks["fleece build (checked-hash .pyc)"].rglob("*"))
        if p.is_file()
    }
    for level in (1, 6, 9):
        start = time.perf_counter()
        summary = write_zip(work / f"level-{level}.zip", dict(files), level=level)
        results.levels.append((level, summary.size, time.perf_counter() - start))
    return results


def report(all_results: list[Results], version: str, python: Interpreter, args: argparse.Namespace) -> bool:
    met = True
    print(f"\npython3.12 x86_64 service from `fleece new`, handler importing the requirements; {version}")
    print(f"imports with Python {python.version}: median of {args.import_runs} paired rounds; warm: median of {args.warm_runs}")
    print(f"load average at the end: {', '.join(f'{x:.2f}' for x in os.getloadavg())} ({os.cpu_count()} cores)\n")
    for results in all_results:
        sam_import = results.imports["sam build"]
        print(f"### {results.name}\n")
        print("| artefact | import over the bootstrap (ms) | vs sam build |")
        print("| --- | ---: | ---: |")
        for name, cost in results.imports.items():
            print(f"| {name} | {cost * 1000:.1f} | {cost / sam_import:.2f}x |")
        fleece_import = results.imports["fleece build (checked-hash .pyc)"] / sam_import
        print("\n| tool | cold build (s) | warm rebuild (s) | warm rebuild, cpu (s) |")
        print("| --- | ---: | ---: | ---: |")
        for tool, warm_tool in (("fleece build", "fleece build"), ("sam build", "sam build --cached")):
            print(
                f"| {warm_tool} | {results.cold[tool]:.2f} | {results.warm[warm_tool]:.3f} "
                f"| {results.warm_cpu[warm_tool]:.3f} |"
            )
        warm_ratio = results.warm["fleece build"] / results.warm["sam build --cached"]
        print("\n| zip | bytes | vs sam build |")
        print("| --- | ---: | ---: |")
        sam_size = results.sizes["sam build (zipped by SAM)"]
        for name, size in results.sizes.items():
            print(f"| {name} | {size:,} | {size / sam_size:.3f}x |")
        print("\n| deflate level of the whole artefact | bytes | seconds |")
        print("| ---: | ---: | ---: |")
        for level, size, seconds in results.levels:
            print(f"| {level} | {size:,} | {seconds:.2f} |")
        checks = {
            f"import cost {fleece_import:.2f}x sam build's (target <= 0.6x)": fleece_import <= 0.6,
            f"warm rebuild {results.warm['fleece build']:.3f} s (target <= 0.3 s)": results.warm["fleece build"] <= 0.3,
            f"warm rebuild {warm_ratio:.2f}x sam build --cached (target <= 0.2x)": warm_ratio <= 0.2,
            f"zip {results.sizes['fleece build'] / sam_size:.3f}x sam build's (target <= 1x)": results.sizes["fleece build"] <= sam_size,
        }
        print()
        for check, ok in checks.items():
            print(f"- {'met' if ok else 'NOT met'}: {check}")
            met = met and ok
        print()
    return met


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--import-runs", type=int, default=40)
    parser.add_argument("--warm-runs", type=int, default=7)
    args = parser.parse_args()
    sam = sam_cli()
    python = python312()
    all_results = [measure(name, requirements, args, sam, python) for name, requirements in REQUIREMENT_SETS.items()]
    version = subprocess.run([str(sam), "--version"], capture_output=True, text=True, check=True).stdout.strip()
    return 0 if report(all_results, version, python, args) else 1


if __name__ == "__main__":
    sys.exit(main())
