"""Train the nine per-plane models and the ensembles: python scripts/train_all.py

Runs from a clone with nothing installed: scripts/mrnet links to the package. Installed,
the same command is mrnet-train-all.
"""

from mrnet.cli.train_all import run

if __name__ == "__main__":
    run()
