"""Share trained models: python scripts/export.py bundle|unpack|onnx ...

Runs from a clone with nothing installed: scripts/mrnet links to the package. Installed,
the same command is mrnet-export.
"""

from mrnet.cli.export import run

if __name__ == "__main__":
    run()
