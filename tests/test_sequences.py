"""Sequence padding (MATLAB_SEMANTICS §17.3) against a hand-written reference."""
import numpy as np
import pytest

from mlayers.training.sequences import pad_sequences, sequence_chunks, unpad_sequences


def reference(seqs, length, value, direction):
    lens = [s.shape[1] for s in seqs]
    L = {"longest": max(lens), "shortest": min(lens)}.get(length)
    if L is None:
        L = -(-max(lens) // length) * length
    out = np.full((seqs[0].shape[0], len(seqs), L), float(value))
    for j, s in enumerate(seqs):
        k = min(L, s.shape[1])
        for t in range(k):
            if direction == "right":
                out[:, j, t] = s[:, t]                     # first k steps, data first
            else:
                out[:, j, L - k + t] = s[:, s.shape[1] - k + t]   # last k steps, data last
    return out


@pytest.mark.parametrize("length", ["longest", "shortest", 3, 1, 8])
@pytest.mark.parametrize("direction", ["right", "left"])
@pytest.mark.parametrize("value", [0, -1.5])
def test_pad_matches_reference(length, direction, value):
    rng = np.random.default_rng(0)
    seqs = [rng.standard_normal((3, t)) for t in (5, 2, 7, 1)]
    X = pad_sequences(seqs, SequenceLength=length, SequencePaddingValue=value,
                      SequencePaddingDirection=direction)
    assert np.array_equal(X, reference(seqs, length, value, direction))
    assert X.flags.f_contiguous and X.dtype == np.float64
    back = unpad_sequences(X, [5, 2, 7, 1], direction)
    for s, b in zip(seqs, back):
        k = b.shape[1]
        assert k == min(s.shape[1], X.shape[2])
        assert np.array_equal(b, s[:, :k] if direction == "right" else s[:, s.shape[1] - k:])


def test_dtypes_shapes_chunks_and_errors():
    X = pad_sequences([np.ones((2, 3), np.float32), np.ones((2, 4), np.float32)])
    assert X.dtype == np.float32 and X.shape == (2, 2, 4)
    assert pad_sequences([np.arange(3.0)]).shape == (1, 1, 3)         # a vector: 1 x T
    img = pad_sequences([np.ones((4, 4, 3, 2)), np.ones((4, 4, 3, 5))])
    assert img.shape == (4, 4, 3, 2, 5)
    assert [c.shape[-1] for c in sequence_chunks(np.zeros((2, 3, 10)), 4)] == [4, 4, 2]
    with pytest.raises(ValueError, match="SequenceLength must be"):
        pad_sequences([np.ones((2, 3))], SequenceLength=0)
    with pytest.raises(ValueError, match="SequencePaddingDirection must be one of"):
        pad_sequences([np.ones((2, 3))], SequencePaddingDirection="up")
    with pytest.raises(ValueError, match="same size except the time steps"):
        pad_sequences([np.ones((2, 3)), np.ones((3, 3))])
