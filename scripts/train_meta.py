"""Fit the per-task stacked ensembles and print the AUC table: python scripts/train_meta.py

Runs from a clone with nothing installed: scripts/mrnet links to the package. Installed,
the same command is mrnet-train-meta.
"""

from mrnet.cli.train_meta import run

if __name__ == "__main__":
    run()
