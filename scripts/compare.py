"""Compare two runs on the same exams: python scripts/compare.py RUN_A RUN_B

Runs from a clone with nothing installed: scripts/mrnet links to the package. Installed,
the same command is mrnet-compare.
"""

from mrnet.cli.compare import run

if __name__ == "__main__":
    run()
