"""The recurrent examples at small size reach their goals."""
import importlib.util
import pathlib

import pytest

EXAMPLES = pathlib.Path(__file__).resolve().parent.parent / "examples"


def load(name):
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_sequence_classification_small():
    ex = load("sequence_classification")
    result = ex.main(num_train=120, num_test=80, num_hidden=24, max_epochs=12, mini_batch=20,
                     verbose=False)
    assert result["accuracy"] >= 0.75          # 4 classes: chance is 0.25


def test_time_series_forecasting_small():
    ex = load("time_series_forecasting")
    result = ex.main(num_sequences=16, length=80, num_hidden=32, num_epochs=120, offset=60,
                     verbose=False)
    assert result["final_loss"] < 0.02 * result["first_loss"]
    # closed-loop forecasts beat repeating the last observed value
    assert result["rmse"] < result["naive_rmse"]
