"""Run by torchrun in tests: trains with DDP and saves this rank's final weights for comparison."""

import os
import sys
from pathlib import Path

import torch
from helpers import train_config

from mrnet.training.trainer import train

if __name__ == "__main__":
    data_dir, output_dir, weights_dir = sys.argv[1:4]
    # fp32: the test compares probabilities to 1e-6
    summary = train(train_config(Path(data_dir), Path(output_dir), amp="off"), keep_model=True)
    torch.save(summary.model_state, Path(weights_dir) / f"rank{os.environ['RANK']}.pt")
