"""`fleece build` against `sam build` on the same service, side by side.

    python bench/build/run.py [--warm-runs 3]

Installs aws-sam-cli into its own venv (``bench/.venvs/sam``, once), generates a
python3.11 service with ``requests`` in its requirements under ``bench/.work/``,
and times both tools (no container):

- cold: empty pip cache, empty fleece cache, no ``.aws-sam``;
- warm: the handler changed, dependencies unchanged (``sam build --cached``
  against fleece's dependency cache): the everyday rebuild.

Zip size: fleece's ``dist/lambda_function.zip``; for SAM, its build folder
zipped by SAM's own packaging code (what ``sam deploy`` uploads). Needs the
network (PyPI), unlike the tests.
"""

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
VENV = ROOT / "bench" / ".venvs" / "sam"
WORK = ROOT / "bench" / ".work" / "build"
RUNTIME = "python3.11"

SAM_TEMPLATE = """\
AWSTemplateFormatVersion: "2010-09-09"
Transform: AWS::Serverless-2016-10-31
Resources:
  Function:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: src/
      Handler: bench_demo.handler.handler
      Runtime: {runtime}
      Architectures: [x86_64]
"""

SAM_ZIP = """\
import sys
from samcli.lib.package.utils import make_zip
print(make_zip(sys.argv[1], sys.argv[2]))
"""


def sam_venv() -> Path:
    sam = VENV / "bin" / "sam"
    if not sam.exists():
        print(f"installing aws-sam-cli into {VENV} ...", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
        subprocess.run(
            [str(VENV / "bin" / "pip"), "install", "--quiet", "aws-sam-cli"],
            check=True,
        )
    return sam


def make_service() -> Path:
    shutil.rmtree(WORK, ignore_errors=True)
    WORK.mkdir(parents=True)
    service = WORK / "bench-demo"
    subprocess.run(
        [sys.executable, "-m", "fleece", "new", "bench-demo", str(service), "--defaults", "--no-git"],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    with (service / "src" / "requirements.txt").open("a") as handle:
        handle.write("requests\n")
    (service / "template.sam.yaml").write_text(SAM_TEMPLATE.format(runtime=RUNTIME))
    return service


def timed(command: list[str], cwd: Path, env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(
        command,
        cwd=cwd,
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return time.perf_counter() - start


def touch_handler(service: Path, n: int) -> None:
    with (service / "src" / "bench_demo" / "handler.py").open("a") as handle:
        handle.write(f"# edit {n}\n")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--warm-runs", type=int, default=3)
    args = parser.parse_args()
    sam = sam_venv()
    service = make_service()
    caches = Path(tempfile.mkdtemp(prefix="fleece-bench-"))
    base = {**os.environ, "SAM_CLI_TELEMETRY": "0"}
    # Both tools start with an empty pip cache; fleece with an empty own cache.
    fleece_env = {
        **base,
        "PIP_CACHE_DIR": str(caches / "pip-fleece"),
        "FLEECE_CACHE_DIR": str(caches / "fleece"),
    }
    sam_env = {**base, "PIP_CACHE_DIR": str(caches / "pip-sam")}
    # sam build runs pip with the runtime's Python, found on PATH.
    # `fleece new` no longer offers python3.11 (retired by Lambda): the service
    # is a python3.12 one, built for python3.11 by both tools.
    fleece_cmd = [sys.executable, "-m", "fleece", "build", str(service)]
    fleece_cmd += ["--python", RUNTIME.removeprefix("python")]
    sam_cmd = [str(sam), "build", "-t", "template.sam.yaml", "--cached"]
    sam_cmd += ["--cache-dir", str(caches / "sam"), "--build-dir", ".aws-sam/build"]
    try:
        results: dict[str, dict[str, float]] = {
            "fleece build": {"cold": timed(fleece_cmd, service, fleece_env)},
            "sam build": {"cold": timed(sam_cmd, service, sam_env)},
        }
        warm: dict[str, list[float]] = {name: [] for name in results}
        for n in range(args.warm_runs):
            touch_handler(service, n)
            warm["fleece build"].append(timed(fleece_cmd, service, fleece_env))
            warm["sam build"].append(timed(sam_cmd, service, sam_env))
        for name, times in warm.items():
            results[name]["warm"] = statistics.median(times)
        fleece_zip = service / "dist" / "lambda_function.zip"
        sam_zip = Path(
            subprocess.run(
                [
                    str(VENV / "bin" / "python"),
                    "-c",
                    SAM_ZIP,
                    str(caches / "sam-function"),
                    str(service / ".aws-sam/build/Function"),
                ],
                check=True,
                capture_output=True,
                text=True,
            ).stdout.strip()
        )
        sizes = {"fleece build": fleece_zip.stat().st_size, "sam build": sam_zip.stat().st_size}
        version = subprocess.run(
            [str(sam), "--version"], capture_output=True, text=True, check=True
        ).stdout.strip()
    finally:
        shutil.rmtree(caches, ignore_errors=True)
    print(f"\nservice: fleece new (api none) + requests, {RUNTIME}, x86_64; {version}")
    print(f"warm = median of {args.warm_runs} rebuilds after a handler edit\n")
    print("| tool | cold (s) | warm (s) | zip (bytes) |")
    print("| --- | ---: | ---: | ---: |")
    for name, timing in results.items():
        cold, warm_median = timing["cold"], timing["warm"]
        print(f"| {name} | {cold:.2f} | {warm_median:.2f} | {sizes[name]:,} |")
    faster = results["fleece build"]["warm"] < results["sam build"]["warm"]
    smaller = sizes["fleece build"] <= sizes["sam build"]
    print(f"\nwarm faster than sam build: {faster}; zip no larger: {smaller}")
    return 0 if faster and smaller else 1


if __name__ == "__main__":
    sys.exit(main())
