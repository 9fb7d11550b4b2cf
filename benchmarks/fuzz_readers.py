"""Every file reader fuzzed at benchmark size: ≥ 1,000 corrupted real files per reader and format.

Runs each plugin's ``tests/test_fuzz_files.py`` with ``MM_FUZZ_EXAMPLES`` (default 1000; ``make test``
runs the same tests at 60) and hypothesis' statistics, and writes the cases per reader, their
outcome and the run time to ``benchmarks/results/fuzz-readers.json``.

    python benchmarks/fuzz_readers.py [--examples 1000]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CASE = re.compile(r"^(\S+::\S+):\s*$")
COUNTS = re.compile(r"(\d+) passing examples?, (\d+) failing examples?, (\d+) invalid examples?")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=1000)
    args = parser.parse_args()
    files = sorted(str(p.relative_to(ROOT)) for p in ROOT.glob("plugins/*/tests/test_fuzz_files.py"))
    env = dict(os.environ, MM_FUZZ_EXAMPLES=str(args.examples), HF_HUB_OFFLINE="1")
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                             "--hypothesis-show-statistics", *files], cwd=ROOT, env=env, capture_output=True, text=True)
    readers, current = {}, None
    for line in result.stdout.splitlines():
        if m := CASE.match(line.strip()):
            current = m.group(1)
        elif current and (m := COUNTS.search(line)):
            passing, failing, invalid = map(int, m.groups())
            entry = readers.setdefault(current, {"passing": 0, "failing": 0, "invalid": 0})
            entry["passing"] += passing
            entry["failing"] += failing
            entry["invalid"] += invalid
    summary = {"examples_per_reader": args.examples, "pytest_exit_code": result.returncode,
               "seconds": round(time.perf_counter() - start, 1), "readers": readers,
               "total_cases": sum(r["passing"] + r["failing"] for r in readers.values())}
    out = ROOT / "benchmarks" / "results" / "fuzz-readers.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(summary, indent=2) + "\n")
    for name, r in readers.items():
        print(f"{r['passing'] + r['failing']:6d} cases  {r['failing']:3d} failing  {name}")
    print(f"{summary['total_cases']} cases over {len(readers)} readers in {summary['seconds']} s; "
          f"pytest exit {result.returncode}; {out}")
    if result.returncode:
        print(result.stdout[-4000:], file=sys.stderr)
    sys.exit(result.returncode)


if __name__ == "__main__":
    main()
