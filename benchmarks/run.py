"""Run every benchmark in turn (each prints its table and writes benchmarks/results/*.json).
Usage: python benchmarks/run.py [--skip heretic end_to_end]"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

ORDER = ["load", "collection", "flops", "generation", "sweep", "judge", "prompt_memory", "random_directions", "end_to_end", "heretic",
         "search_vs_heretic"]
ROOT = Path(__file__).parent.parent
# the committed 0.5B run holds the refusal search (`interp search --run ... --kind refusal`) it scores
ARGS = {"search_vs_heretic": ["--run", str(ROOT / "results" / "qwen2.5-coder-0.5b")]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip", nargs="*", default=[], choices=ORDER)
    args = parser.parse_args()
    here = Path(__file__).parent
    for name in ORDER:
        if name in args.skip:
            continue
        print(f"== {name}", flush=True)
        subprocess.run([sys.executable, str(here / f"{name}.py"), *ARGS.get(name, [])], check=True)


if __name__ == "__main__":
    main()
