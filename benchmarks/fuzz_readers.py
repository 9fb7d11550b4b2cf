"""Every file reader fuzzed at benchmark size: ≥ 1,000 corrupted real files per reader and format.

Runs each plugin's ``tests/test_fuzz_files.py`` with ``MM_FUZZ_EXAMPLES`` (default 1000; ``make test``
runs the same tests at 60), counts the files each test really tried, and writes the counts, the
outcome and the run time to ``benchmarks/results/fuzz-readers.json``.

    python benchmarks/fuzz_readers.py [--examples 1000]

The counting: this module is also a pytest plugin (``-p fuzz_readers``) that wraps
`mmcore.testing.corrupted` before the tests import it, so every damaged file drawn is counted
under the test that drew it.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
COUNTS_ENV = "MM_FUZZ_COUNTS"
drawn: Counter = Counter()


def pytest_configure(config) -> None:
    import mmcore.testing

    original = mmcore.testing.corrupted

    def counted(*args, **kwargs):
        def count(data: bytes) -> bytes:
            drawn[os.environ.get("PYTEST_CURRENT_TEST", "?").split(" ")[0]] += 1
            return data

        return original(*args, **kwargs).map(count)

    mmcore.testing.corrupted = counted


def pytest_sessionfinish(session, exitstatus) -> None:
    if os.environ.get(COUNTS_ENV):
        Path(os.environ[COUNTS_ENV]).write_text(json.dumps(dict(drawn)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=1000)
    args = parser.parse_args()
    files = sorted(str(p.relative_to(ROOT)) for p in ROOT.glob("plugins/*/tests/test_fuzz_files.py"))
    counts_file = ROOT / "benchmarks" / "results" / ".fuzz-counts.json"
    counts_file.parent.mkdir(parents=True, exist_ok=True)
    env = dict(
        os.environ,
        MM_FUZZ_EXAMPLES=str(args.examples),
        HF_HUB_OFFLINE="1",
        PYTHONPATH=os.pathsep.join([str(ROOT / "benchmarks"), os.environ.get("PYTHONPATH", "")]),
    )
    env[COUNTS_ENV] = str(counts_file)
    start = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "fuzz_readers", *files],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    readers = json.loads(counts_file.read_text())
    counts_file.unlink()
    summary = {
        "examples_per_reader": args.examples,
        "pytest_exit_code": result.returncode,
        "pytest_summary": result.stdout.strip().splitlines()[-1],
        "seconds": round(time.perf_counter() - start, 1),
        "files_tried_per_test": readers,
        "total_files_tried": sum(readers.values()),
    }
    out = ROOT / "benchmarks" / "results" / "fuzz-readers.json"
    out.write_text(json.dumps(summary, indent=2) + "\n")
    for name, n in sorted(readers.items()):
        print(f"{n:6d}  {name}")
    print(
        f"{summary['total_files_tried']} damaged files over {len(readers)} reader x format tests in "
        f"{summary['seconds']} s: {summary['pytest_summary']}; {out}"
    )
    if result.returncode:
        print(result.stdout[-4000:], file=sys.stderr)
    sys.exit(result.returncode)


if __name__ == "__main__":
    main()
