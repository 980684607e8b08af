"""Shared fixtures: tiny MRNet-layout datasets and tiny trained models, written to temporary folders."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import write_tiny_layout
from tiny_models import TinyRun, trained_models


@pytest.fixture
def tiny_data(tmp_path: Path) -> Path:
    return write_tiny_layout(tmp_path / "MRNet-v1.0")


@pytest.fixture(scope="session")
def tiny(tmp_path_factory) -> TinyRun:
    """Nine 1-epoch models and their ensembles on synthetic knees, trained once per test session."""
    return trained_models(tmp_path_factory.mktemp("tiny"))
