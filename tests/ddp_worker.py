"""Run by torchrun in tests: trains with DDP and saves this rank's final weights for comparison."""

import os
import sys
from pathlib import Path

import torch

from mrnet.training.config import TrainConfig
from mrnet.training.trainer import train

if __name__ == "__main__":
    data_dir, output_dir, weights_dir = sys.argv[1:4]
    summary = train(
        TrainConfig(
            task="acl",
            plane="sagittal",
            data_dir=data_dir,
            models_dir=output_dir,
            epochs=1,
            lr=1e-4,
            weight_decay=1e-4,
            pretrained=False,
            device="cpu",
            seed=0,
            amp="off",
        ),  # fp32: the test compares probabilities to 1e-6
        keep_model=True,
    )
    torch.save(summary["model_state"], Path(weights_dir) / f"rank{os.environ['RANK']}.pt")
