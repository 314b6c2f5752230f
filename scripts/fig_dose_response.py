"""Figure family 'dose_response' from a saved run: python scripts/fig_dose_response.py RUN_DIR [--out figures/]."""

from _figure import main

if __name__ == "__main__":
    main(["dose_response"])
