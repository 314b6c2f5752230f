"""Figure family 'cosine' from a saved run: python scripts/fig_cosine.py RUN_DIR [--out figures/]."""

from _figure import main

if __name__ == "__main__":
    main(["cosine"])
