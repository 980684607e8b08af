"""Import DICOM studies or KneeMRI into the MRNet-v1.0 layout: python scripts/import_data.py dicom SRC ...

Runs from a clone with nothing installed: scripts/mrnet links to the package. Installed,
the same command is mrnet-import-data.
"""

from mrnet.cli.import_data import run

if __name__ == "__main__":
    run()
