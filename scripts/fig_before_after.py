"""Figure family 'before_after' from a saved run: python scripts/fig_before_after.py RUN_DIR [--out figures/]."""

from _figure import main

if __name__ == "__main__":
    main(["before_after"])
