"""The training examples at small size (MLAYERS_EXAMPLE_SMALL=1) reach their goals:
simple_classification a high validation accuracy, regression an RMSE far below the
predict-the-mean baseline.  (tests/test_examples.py runs every example as a script; the
custom loop is checked against PyTorch in tests/test_custom_loop.py.)"""
import pathlib
import runpy

import pytest

EXAMPLES = pathlib.Path(__file__).parent.parent / "examples"


@pytest.fixture
def small(monkeypatch):
    monkeypatch.setenv("MLAYERS_EXAMPLE_SMALL", "1")


def test_simple_classification_accuracy(small, capsys):
    accuracy, seconds = runpy.run_path(str(EXAMPLES / "simple_classification.py"))["main"]()
    print(capsys.readouterr().out.splitlines()[-1])
    assert accuracy > 0.7


def test_regression_rmse(small):
    rmse, baseline = runpy.run_path(str(EXAMPLES / "regression.py"))["main"]()
    assert rmse < baseline / 2
