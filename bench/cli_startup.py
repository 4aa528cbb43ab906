"""How fast ``trl-report --help`` starts, next to ``trackio --help`` and ``hf --help``.

    python bench/cli_startup.py [--repeat 15]

Each command runs ``--repeat`` times in a fresh process, in interleaved order, and the script
prints the median and best wall time of each (target for trl-report: under 0.3 s). It also checks
that starting trl-report imported neither torch nor transformers.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=15)
    options = parser.parse_args()
    bindir = Path(sys.executable).parent
    commands = {
        name: str(bindir / name) if (bindir / name).exists() else shutil.which(name)
        for name in ("trl-report", "trackio", "hf")
    }
    times: dict[str, list[float]] = {name: [] for name, path in commands.items() if path}
    for _ in range(options.repeat):
        for name in times:
            start = time.perf_counter()
            subprocess.run([commands[name], "--help"], capture_output=True, check=True)
            times[name].append(time.perf_counter() - start)
    print(f"--help wall time over {options.repeat} runs each (interleaved):")
    for name, values in times.items():
        print(f"  {name:<11} median {statistics.median(values) * 1000:7.1f} ms   best {min(values) * 1000:7.1f} ms")
    probe = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, trl_reporter.cli; print(sorted(m for m in ('torch', 'transformers', 'trl', 'trackio') if m in sys.modules))",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    print(f"  heavy modules imported by trl_reporter.cli: {probe.stdout.strip()}")


if __name__ == "__main__":
    main()
