"""Every figure from a saved run into figures/: python scripts/make_figures.py RUN_DIR [--out figures/]."""

from _figure import main

if __name__ == "__main__":
    main()
