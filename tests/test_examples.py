"""Run every script in examples/ at a small size (MLAYERS_EXAMPLE_SMALL=1)."""
import pathlib
import runpy

import pytest

EXAMPLES = sorted((pathlib.Path(__file__).parent.parent / "examples").glob("*.py"))


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_example_runs(path, monkeypatch, capsys):
    monkeypatch.setenv("MLAYERS_EXAMPLE_SMALL", "1")
    runpy.run_path(str(path), run_name="__main__")
    out = capsys.readouterr().out
    assert "with properties:" in out
    assert "output size" in out
