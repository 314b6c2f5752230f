"""Figure family 'logit_lens' from a saved run: python scripts/fig_logit_lens.py RUN_DIR [--out figures/]."""

from _figure import main

if __name__ == "__main__":
    main(["logit_lens"])
