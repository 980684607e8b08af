"""Predict new exams with trained models: python scripts/predict.py --exam-dir DIR

Runs from a clone with nothing installed: scripts/mrnet links to the package. Installed,
the same command is mrnet-predict.
"""

from mrnet.cli.predict import run

if __name__ == "__main__":
    run()
