"""The rule that keeps `make test-fast` fast: tests that train or start processes are slow, marker or not."""

from __future__ import annotations

from pathlib import Path

from conftest import TRAINED_FIXTURES

pytest_plugins = ("pytester",)

CONFTEST = (Path(__file__).parent / "conftest.py").read_text()


def test_every_collected_test_using_a_trained_fixture_is_slow(request):
    users = [item for item in request.session.items if TRAINED_FIXTURES & set(getattr(item, "fixturenames", ()))]
    assert all(item.get_closest_marker("slow") is not None for item in users), [
        item.nodeid for item in users if item.get_closest_marker("slow") is None
    ]


def test_tests_using_a_trained_fixture_or_starting_a_process_are_slow_without_a_marker(pytester):
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(
        """
        import pytest
        from helpers import run_python

        @pytest.fixture
        def report(tiny):  # reaches a trained fixture through another fixture
            return tiny

        @pytest.fixture(scope="session")
        def tiny():  # stands in for the real one: the rule goes by name
            return None

        def test_uses_tiny(tiny):
            pass

        def test_uses_tiny_through_report(report):
            pass

        def test_starts_a_process():
            assert callable(run_python)  # the rule reads the names a test uses; nothing needs to start here

        def test_plain():
            pass
        """
    )
    fast = pytester.runpytest("-m", "not slow", "-p", "no:cacheprovider")
    fast.assert_outcomes(passed=1, deselected=3)
    fast.stdout.fnmatch_lines(["*1 passed, 3 deselected*"])
    pytester.runpytest("-m", "slow", "-p", "no:cacheprovider").assert_outcomes(passed=3, deselected=1)


def test_a_fast_test_that_starts_a_process_or_trains_fails_saying_to_mark_it(pytester):
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(
        """
        import subprocess

        import pytest
        from helpers import run_python

        UNGUARDED = subprocess.Popen  # as this file was collected

        def start(*args):  # hidden from the collection rule: only the guard sees it
            return run_python(*args)

        def test_hidden_process():
            start("-c", "pass")

        def test_hidden_training():
            from mrnet.training import trainer

            trainer.fit(None)

        @pytest.mark.slow
        def test_marked_test_is_not_guarded():
            assert subprocess.Popen is UNGUARDED
        """
    )
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, failed=2)
    result.stdout.fnmatch_lines(
        [
            "*test_hidden_process starts a process: mark it @pytest.mark.slow*",
            "*test_hidden_training trains a model: mark it @pytest.mark.slow*",
        ]
    )
