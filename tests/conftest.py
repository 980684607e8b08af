"""Shared fixtures: tiny MRNet-layout datasets and tiny trained models, written to temporary folders.

Also the rule that keeps `make test-fast` fast: a test that uses a trained model, starts a
process or trains one is `slow`, whether or not its author wrote the marker.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from helpers import write_tiny_layout
from tiny_models import TinyRun, trained_models

# Fixtures that train models when first requested (seconds to minutes): a test using one is slow. Named here
# because a module- or session-scoped fixture is set up before the guard below could see it train.
TRAINED_FIXTURES = frozenset({"tiny", "lesion_model", "acl_models"})

# Names in a test's body that start a process (the helpers in helpers.py, or subprocess itself).
PROCESS_NAMES = frozenset({"run_python", "run_script", "start_script", "run_training", "subprocess"})


def slow_reason(item: pytest.Item) -> str | None:
    """Why a collected test is slow by rule, or None: a trained fixture (directly or through another), or a process."""
    trained = TRAINED_FIXTURES.intersection(getattr(item, "fixturenames", ()))
    if trained:
        return f"uses the trained fixture {', '.join(sorted(trained))}"
    function = getattr(item, "function", None)
    names = set(function.__code__.co_names) if function is not None else set()
    started = PROCESS_NAMES & names
    if started:
        return f"starts a process ({', '.join(sorted(started))})"
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if item.get_closest_marker("slow") is None and slow_reason(item) is not None:
            item.add_marker(pytest.mark.slow)


@pytest.fixture(autouse=True)
def fast_tests_stay_fast(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """A test not marked slow may neither start a process nor run a training loop: it fails, saying to mark it."""
    if request.node.get_closest_marker("slow") is not None:
        return
    from mrnet.training import trainer

    def refuse(what: str):
        def refused(*args, **kwargs):
            raise AssertionError(f"{request.node.nodeid} {what}: mark it @pytest.mark.slow (make test-fast skips it)")

        return refused

    monkeypatch.setattr(subprocess, "Popen", refuse("starts a process"))
    monkeypatch.setattr(trainer, "fit", refuse("trains a model"))


@pytest.fixture
def tiny_data(tmp_path: Path) -> Path:
    return write_tiny_layout(tmp_path / "MRNet-v1.0")


@pytest.fixture(scope="session")
def alexnet_weights(tmp_path_factory):
    """A torchvision AlexNet state dict file (244 MB, seeded), written once per session, and its first conv weight."""
    import torch
    from torchvision.models import alexnet

    torch.manual_seed(1)
    state = alexnet(weights=None).state_dict()
    path = tmp_path_factory.mktemp("alexnet") / "alexnet.pth"
    torch.save(state, path)
    return path, state["features.0.weight"].clone()


@pytest.fixture(scope="session")
def tiny(tmp_path_factory) -> TinyRun:
    """Nine 1-epoch models and their ensembles on synthetic knees, trained once per test session."""
    return trained_models(tmp_path_factory.mktemp("tiny"))
