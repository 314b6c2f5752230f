"""Figure family 'projections' from a saved run: python scripts/fig_projections.py RUN_DIR [--out figures/]."""

from _figure import main

if __name__ == "__main__":
    main(["projections"])
