"""Run benchmarks and write docs/benchmarks.md.

    python benchmarks/run.py              # every section
    python benchmarks/run.py seq video    # only these sections

Each section's result is kept in benchmarks/results/<section>.md; docs/benchmarks.md is
assembled from all of them, so re-running one section keeps the others. Generated data goes to
benchmarks/data/ (or $IMSEQ_BENCH_DATA); it is large and not committed.
"""

from __future__ import annotations

import datetime
import importlib
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _common import HERE, machine  # noqa: E402

SECTIONS = [
    "seq", "video", "memory", "dask", "write", "transforms", "napari", "export", "mosaic", "live",
    "map", "batch", "sources",
]  # fmt: skip
RESULTS = os.path.join(HERE, "results")


def assemble() -> str:
    parts = [
        "# Benchmarks",
        "",
        "Written by `python benchmarks/run.py` (one command; each section can be re-run alone: "
        "`python benchmarks/run.py video`). Figures are from single runs on the machine named in "
        "each section, reported next to the tools a user would otherwise pick. No test asserts "
        "timings.",
        "",
    ]
    for name in SECTIONS:
        frag = os.path.join(RESULTS, f"{name}.md")
        if os.path.exists(frag):
            with open(frag) as f:
                parts.append(f.read())
    return "\n".join(parts)


def main(argv: list[str]) -> int:
    wanted = argv or SECTIONS
    unknown = sorted(set(wanted) - set(SECTIONS))
    if unknown:
        print(f"unknown section(s) {unknown}; choose from {SECTIONS}", file=sys.stderr)
        return 2
    os.makedirs(RESULTS, exist_ok=True)
    for name in SECTIONS:
        if name not in wanted:
            continue
        mod = importlib.import_module(f"bench_{name}")
        print(f"running {name} ...", flush=True)
        body = mod.run()
        stamp = f"_Run {datetime.date.today().isoformat()} on {machine()}._\n\n"
        head, _, rest = body.partition("\n\n")
        with open(os.path.join(RESULTS, f"{name}.md"), "w") as f:
            f.write(f"{head}\n\n{stamp}{rest}\n")
    out = os.path.join(HERE, "..", "docs", "benchmarks.md")
    with open(out, "w") as f:
        f.write(assemble())
    print(open(out).read())
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
