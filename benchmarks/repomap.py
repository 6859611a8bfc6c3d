"""Repo map speed on Django's source against Aider's RepoMap, measured in the same run.

Downloads the Django 5.2 sdist from PyPI (~2,800 .py files) and maps all of its Python
files with a 1,024-token budget, cold (empty tags cache) and warm (cache present), with
moe-agent's `tools.repomap` and with Aider's `RepoMap` (aider-chat 0.86.2, installed into
its own virtualenv under benchmarks/.cache/aider-venv on first use). Every measurement runs
in a fresh process and times only the map call: imports, and Aider's model and tokenizer
set-up, are left out for both.

    python benchmarks/repomap.py [--warm-runs 3] [--hostile-only]

Then the hostile case: a directory holding a 2 MB minified JavaScript bundle (tens of
thousands of functions on one line) and a 900 KB one under a plain name, mapped cold, and
the 2 MB bundle's outline (every definition extracted), in a fresh process; its peak RSS
is compared with the same driver on a two-file project, and must stay within 300 MB.

The last line is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

CACHE = Path(__file__).resolve().parent / ".cache"
DJANGO = "django==5.2.*"
AIDER = "aider-chat==0.86.2"
AIDER_VENV = CACHE / "aider-venv"
MAP_TOKENS = 1024

# Runs inside the Aider virtualenv: argv = root, JSON file of relative paths, token budget, "cold"|"warm".
AIDER_DRIVER = r"""
import glob, json, os, shutil, sys, time
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
from aider.io import InputOutput
from aider.models import Model
from aider.repomap import RepoMap

root, listing, tokens, mode = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
files = [os.path.join(root, path) for path in json.load(open(listing))]
if mode == "cold":
    for stale in glob.glob(os.path.join(root, ".aider.tags.cache.v*")):
        shutil.rmtree(stale)
model = Model("gpt-4o-mini")
model.token_count("warm the tokenizer up outside the timing")
io = InputOutput(pretty=False, yes=True, fancy_input=False)
start = time.perf_counter()
repo_map = RepoMap(map_tokens=tokens, root=root, main_model=model, io=io)
text = repo_map.get_repo_map(chat_files=[], other_files=files) or ""
seconds = time.perf_counter() - start
print(json.dumps({"seconds": seconds, "chars": len(text)}))
"""

# Runs in this interpreter, from the repository root: argv = root, JSON file of relative
# paths, token budget, tags cache directory.
OURS_DRIVER = r"""
import json, sys, time
from tools.repomap import HostDirectory, build_repo_map
from tools.tags import TagCache

root, listing, tokens, cache_dir = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
paths = json.load(open(listing))
start = time.perf_counter()
repo_map = build_repo_map(HostDirectory(root, paths).files(), max_tokens=tokens, cache=TagCache(cache_dir))
seconds = time.perf_counter() - start
print(json.dumps({"seconds": seconds, "chars": len(repo_map.text), "parsed": repo_map.parsed}))
"""
REPO = Path(__file__).resolve().parent.parent
HOSTILE_BOUND_MB = 300
HOSTILE_BUNDLE_BYTES = 2_000_000

# Runs in this interpreter, from the repository root: argv = root, tags cache directory, file to
# outline, "tools" (the map and outline as the tools run them) or "extract" (every tag of that
# file, as if it had not been recognised as minified).
HOSTILE_DRIVER = r"""
import json, resource, sys, time
from pathlib import Path
from tools.repomap import HostDirectory, build_repo_map
from tools.tags import TagCache, extract_tags, outline

root, cache_dir, outlined, mode = sys.argv[1:5]
start = time.perf_counter()
if mode == "tools":
    repo_map = build_repo_map(HostDirectory(root).files(), max_tokens=1024, cache=TagCache(cache_dir))
    symbols = outline(outlined, Path(root, outlined).read_bytes()) or []
    chars = len(repo_map.text)
else:
    symbols, chars = extract_tags("javascript", Path(root, outlined).read_bytes()).definitions, 0
seconds = time.perf_counter() - start
cache_bytes = sum(f.stat().st_size for f in Path(cache_dir).iterdir())
print(json.dumps({"seconds": seconds, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "symbols": len(symbols), "chars": chars, "cache_bytes": cache_bytes}))
"""


def minified_bundle(size: int) -> bytes:
    """What a bundler writes: functions, arrow functions, methods and calls, all on one line."""
    parts, total, index = [], 0, 0
    while total < size:
        part = (f"function f{index}(a,b){{return f{index // 2}(a)+b.k{index % 97}(a)}};"
                f"var g{index}=function(c){{return new C{index % 13}(c)}};"
                f"o.m{index}=(d)=>d*{index};class C{index}{{h{index}(e){{return g{index}(e)}}}};")
        parts.append(part)
        total += len(part)
        index += 1
    return "".join(parts).encode()


def hostile_case(scratch: Path) -> dict[str, float]:
    """Peak RSS of a map and an outline over minified bundles, and of the same on a small project."""
    bundle = minified_bundle(HOSTILE_BUNDLE_BYTES)
    hostile, small = scratch / "hostile", scratch / "small"
    for root in (hostile, small):
        root.mkdir()
        (root / "app.js").write_text("import {run} from './lib.js';\nfunction main() {\n  return run(1);\n}\n")
        (root / "lib.js").write_text("export function run(x) {\n  return x + 1;\n}\n")
    (hostile / "dist").mkdir()
    (hostile / "dist" / "bundle.js").write_bytes(bundle)
    (hostile / "dist" / "vendor.js").write_bytes(bundle[: HOSTILE_BUNDLE_BYTES * 9 // 20])
    runs = {}
    cases = (("small", small, "lib.js", "tools"), ("hostile", hostile, "dist/bundle.js", "tools"),
             ("unrecognised", hostile, "dist/bundle.js", "extract"))
    for name, root, outlined, mode in cases:
        cache = scratch / f"{name}-tags"
        cache.mkdir()
        runs[name] = measure([sys.executable, "-c", HOSTILE_DRIVER, str(root), str(cache), outlined, mode])
    return {
        "hostile_bundle_bytes": len(bundle),
        "hostile_peak_rss_mb": round(runs["hostile"]["peak_rss_mb"], 1),
        "hostile_small_project_rss_mb": round(runs["small"]["peak_rss_mb"], 1),
        "hostile_rss_ratio_vs_small": round(runs["hostile"]["peak_rss_mb"] / runs["small"]["peak_rss_mb"], 2),
        "hostile_seconds": round(runs["hostile"]["seconds"], 2),
        "hostile_unrecognised_peak_rss_mb": round(runs["unrecognised"]["peak_rss_mb"], 1),
        "hostile_unrecognised_definitions": int(runs["unrecognised"]["symbols"]),
        "hostile_cache_bytes": int(runs["hostile"]["cache_bytes"]),
        "hostile_within_bound": runs["hostile"]["peak_rss_mb"] <= HOSTILE_BOUND_MB,
    }


def report_hostile(figures: dict[str, float]) -> None:
    print(f"hostile: {figures['hostile_bundle_bytes'] / 1e6:.1f} MB minified bundle, map + outline: peak RSS "
          f"{figures['hostile_peak_rss_mb']} MB (bound {HOSTILE_BOUND_MB} MB), small project "
          f"{figures['hostile_small_project_rss_mb']} MB -> {figures['hostile_rss_ratio_vs_small']}x; "
          f"cache {figures['hostile_cache_bytes'] / 1e6:.2f} MB; all {figures['hostile_unrecognised_definitions']} "
          f"definitions extracted as if not recognised: {figures['hostile_unrecognised_peak_rss_mb']} MB")


def django_source() -> Path:
    """The unpacked sdist, downloaded once into the cache."""
    CACHE.mkdir(exist_ok=True)
    archives = sorted(CACHE.glob("django-5.2*.tar.gz"))
    if not archives:
        subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary", ":all:",
                        DJANGO, "-d", str(CACHE)], check=True)
        archives = sorted(CACHE.glob("django-5.2*.tar.gz"))
    archive = archives[-1]
    root = CACHE / archive.name.removesuffix(".tar.gz")
    if not root.is_dir():
        with tarfile.open(archive) as tar:
            tar.extractall(CACHE, filter="data")
    return root


def aider_python() -> Path:
    """The Aider virtualenv's interpreter, creating the virtualenv on first use."""
    python = AIDER_VENV / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(AIDER_VENV)], check=True)
    probe = subprocess.run([str(python), "-c", "import aider.repomap"], capture_output=True, check=False)
    if probe.returncode != 0:
        print(f"installing {AIDER} into {AIDER_VENV} (once) ...", flush=True)
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", AIDER], check=True)
    return python


def measure(command: list[str]) -> dict[str, float]:
    """Run a driver in a fresh process; its last stdout line is its JSON result."""
    done = subprocess.run(command, capture_output=True, text=True, cwd=REPO, check=False)
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        raise SystemExit(f"measurement failed: {' '.join(command[:3])} ...\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    return json.loads(lines[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--warm-runs", type=int, default=3, help="warm runs per tool; the fastest counts")
    parser.add_argument("--hostile-only", action="store_true",
                        help="only the minified-bundle case (no Django, no Aider)")
    args = parser.parse_args()
    if args.hostile_only:
        with tempfile.TemporaryDirectory(prefix="repomap-hostile-") as scratch:
            figures = hostile_case(Path(scratch))
        report_hostile(figures)
        print(json.dumps(figures))
        return

    root = django_source()
    paths = sorted(str(path.relative_to(root)) for path in root.rglob("*.py"))
    aider = aider_python()
    with tempfile.TemporaryDirectory(prefix="repomap-bench-") as scratch:
        listing = Path(scratch) / "files.json"
        listing.write_text(json.dumps(paths))
        ours_cache = Path(scratch) / "tags"
        ours = [sys.executable, "-c", OURS_DRIVER, str(root), str(listing), str(MAP_TOKENS), str(ours_cache)]
        theirs = [str(aider), "-c", AIDER_DRIVER, str(root), str(listing), str(MAP_TOKENS)]

        print(f"{len(paths)} Python files in {root.name}; map budget {MAP_TOKENS} tokens")
        shutil.rmtree(ours_cache, ignore_errors=True)
        ours_cold = measure(ours)
        assert ours_cold["parsed"] > 0, "the cold run found a warm cache"
        aider_cold = measure([*theirs, "cold"])
        ours_warm = min((measure(ours) for _ in range(args.warm_runs)), key=lambda r: r["seconds"])
        assert ours_warm["parsed"] == 0, "the warm run parsed files"
        aider_warm = min((measure([*theirs, "warm"]) for _ in range(args.warm_runs)), key=lambda r: r["seconds"])
        hostile = hostile_case(Path(scratch))

    figures = {
        "files": len(paths),
        "cold_seconds": round(ours_cold["seconds"], 3),
        "warm_seconds": round(ours_warm["seconds"], 3),
        "aider_cold_seconds": round(aider_cold["seconds"], 3),
        "aider_warm_seconds": round(aider_warm["seconds"], 3),
        "cold_ratio_vs_aider": round(aider_cold["seconds"] / ours_cold["seconds"], 2),
        "warm_ratio_vs_aider": round(aider_warm["seconds"] / ours_warm["seconds"], 2),
        "map_chars": int(ours_warm["chars"]),
        "aider_map_chars": int(aider_warm["chars"]),
        **hostile,
    }
    print(f"cold: moe-agent {figures['cold_seconds']:.2f} s, Aider {figures['aider_cold_seconds']:.2f} s "
          f"-> {figures['cold_ratio_vs_aider']}x")
    print(f"warm: moe-agent {figures['warm_seconds']:.3f} s, Aider {figures['aider_warm_seconds']:.2f} s "
          f"-> {figures['warm_ratio_vs_aider']}x (fastest of {args.warm_runs})")
    print(f"map size: moe-agent {figures['map_chars']} chars, Aider {figures['aider_map_chars']} chars")
    report_hostile(figures)
    print(json.dumps(figures))


if __name__ == "__main__":
    started = time.perf_counter()
    main()
    print(f"(benchmark took {time.perf_counter() - started:.0f} s)", file=sys.stderr)
