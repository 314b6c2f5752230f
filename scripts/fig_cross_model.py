"""Figure 'cross_model' from several runs (e.g. both embedded sizes), no model loaded:
python scripts/fig_cross_model.py RUN_DIR RUN_DIR ... [--out figures/]"""

from __future__ import annotations

import argparse
from pathlib import Path

from interp.study.figures import make_cross_model

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="Compare layer sweeps (by depth) and before/after across runs.")
    parser.add_argument("run_dirs", type=Path, nargs="+", help="`interp run` directories")
    parser.add_argument("--out", type=Path, default=Path("figures"))
    args = parser.parse_args()
    for path in make_cross_model(args.run_dirs, args.out):
        print(path)
