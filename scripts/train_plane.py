"""Train one per-plane MRNet model: python scripts/train_plane.py --task acl --plane sagittal

Runs from a clone with nothing installed: scripts/mrnet links to the package. Installed,
the same command is mrnet-train-plane.
"""

from mrnet.cli.train_plane import run

if __name__ == "__main__":
    run()
