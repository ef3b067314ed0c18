"""Run every benchmark and write docs/benchmarks.md.

    python benchmarks/run.py            # all
    python benchmarks/run.py seq        # only some sections

Generated data goes to benchmarks/data/ (or $IMSEQ_BENCH_DATA); it is large and not committed.
"""

from __future__ import annotations

import datetime
import importlib
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _common import HERE, machine  # noqa: E402

SECTIONS = ["seq", "video"]


def main(argv: list[str]) -> int:
    wanted = argv or SECTIONS
    parts = [
        "# Benchmarks",
        "",
        "Written by `python benchmarks/run.py`; numbers are from one run on the machine below, "
        "as ratios against the tool a user would otherwise pick. No test asserts timings.",
        "",
        f"Run: {datetime.date.today().isoformat()} on {machine()}.",
        "",
    ]
    for name in SECTIONS:
        if name not in wanted:
            continue
        mod = importlib.import_module(f"bench_{name}")
        print(f"running {name} ...", flush=True)
        parts.append(mod.run())
    out = os.path.join(HERE, "..", "docs", "benchmarks.md")
    with open(out, "w") as f:
        f.write("\n".join(parts))
    print(open(out).read())
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
