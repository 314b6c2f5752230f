"""Shared entry point for the figure scripts: redraw figures from a run directory, no model loaded."""

from __future__ import annotations

import argparse
from pathlib import Path

from interp.study.figures import FIGURES, make_all


def main(only: list[str] | None = None) -> None:
    names = ", ".join(only or FIGURES)
    parser = argparse.ArgumentParser(description=f"Redraw {names} from an `interp run` directory (PNG + PDF).")
    parser.add_argument("run_dir", type=Path, help="directory holding report.json")
    parser.add_argument("--out", type=Path, default=Path("figures"), help="output directory (default: figures/)")
    args = parser.parse_args()
    for path in make_all(args.run_dir, args.out, only):
        print(path)
