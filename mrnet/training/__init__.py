"""Training per-plane models: the config, one epoch, the epoch loop, data parallelism and sweeps."""
