"""Figure family 'layer_sweep' from a saved run: python scripts/fig_layer_sweep.py RUN_DIR [--out figures/]."""

from _figure import main

if __name__ == "__main__":
    main(["layer_sweep"])
