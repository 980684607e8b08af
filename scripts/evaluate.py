"""Evaluate trained models and write the report: python scripts/evaluate.py

Runs from a clone with nothing installed: scripts/mrnet links to the package. Installed,
the same command is mrnet-evaluate.
"""

from mrnet.cli.evaluate import run

if __name__ == "__main__":
    run()
