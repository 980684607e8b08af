"""Write synthetic knees in the MRNet-v1.0 layout: python scripts/make_synthetic.py --out data/synthetic

Runs from a clone with nothing installed: scripts/mrnet links to the package. Installed,
the same command is mrnet-make-synthetic.
"""

from mrnet.cli.make_synthetic import run

if __name__ == "__main__":
    run()
