"""Cold start of one or more commands, run in turn so machine load hits them alike.

    python scripts/cold_start.py --runs 10 \\
        "faceapp-cli match tests/data/obama2.jpg" \\
        "/other/venv/bin/faceapp-cli match tests/data/obama2.jpg"

Each command (a shell command line) runs ``--runs`` times, interleaved with the others
(A B A B ...), after one untimed warm-up run each (which also compiles ``.pyc`` files and
fills the disk cache). Prints min, median and max wall time per command, and each
median as a ratio of the first command's. Commands must exit 0.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import time


def run_once(cmd: str) -> float:
    t0 = time.perf_counter()
    done = subprocess.run(cmd, shell=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    elapsed = time.perf_counter() - t0
    if done.returncode != 0:
        raise SystemExit(f"{cmd!r} exited {done.returncode}: {done.stderr.strip()[-500:]}")
    return elapsed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("commands", nargs="+")
    args = ap.parse_args()
    for cmd in args.commands:
        run_once(cmd)
    times: dict[str, list[float]] = {cmd: [] for cmd in args.commands}
    for _ in range(args.runs):
        for cmd in args.commands:
            times[cmd].append(run_once(cmd))
    base = statistics.median(times[args.commands[0]])
    for cmd, ts in times.items():
        med = statistics.median(ts)
        print(f"min {min(ts):.2f} s  median {med:.2f} s  max {max(ts):.2f} s  ({med / base:.2f}x)  {cmd}")


if __name__ == "__main__":
    main()
