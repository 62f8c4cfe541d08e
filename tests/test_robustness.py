"""Robustness (issue 21): nothing a user types hangs, wraps, crashes or costs out of
proportion.

Part 1: one regression test per defect of issue 21 (each confirmed failing before its fix).
Part 2: the property-based suite over every public constructor, ``predict``, the
functional operations, ``dlnetwork`` and ``dlfeval``/``dlgradient``: any input either
computes the value an independent reference gives or raises ``ValueError``/``TypeError``
(``AttributeError`` for unknown properties) whose message names the function and the
argument.  Layers and operations added later are walked automatically
(``mlayers._props.LAYER_CLASSES``, ``ml.__all__``, ``ml.functional.__all__``).

The longer campaign is ``tools/fuzz_campaign.py`` (a subprocess and a timeout per case);
its last results are summarized in ``docs/robustness.md``.
"""
import math
import threading
import time
import tracemalloc
import warnings

import numpy as np
import pytest

import mlayers as ml
from mlayers import _ops
from mlayers._rng import rng as mrng


@pytest.fixture(autouse=True)
def _keep_stream():
    saved = mrng()
    yield
    mrng(saved)


# =========================================================================== Part 1

# ------------------------------------------------------------------ 1. twister State

def _settings(state, seed=0):
    return {"Type": "twister", "Seed": seed, "State": state}


@pytest.mark.parametrize("state", [
    np.zeros(625, np.uint32),                                  # the all-zero key
    np.r_[np.uint32(0x7FFFFFFF), np.zeros(623, np.uint32), 0],  # only word 1's low bits
])
def test_rng_refuses_the_degenerate_state(state):
    before = mrng()
    with pytest.raises(ValueError, match=r"^rng: State must not be the all-zero"):
        mrng(_settings(state))
    assert mrng() == before            # nothing changed: rand/randn still work
    u = ml.rand(1, 1000)
    assert u.min() > 0 and u.max() < 1
    assert np.isfinite(ml.randn(1, 10)).all()


def test_rng_accepts_a_state_whose_top_bit_alone_is_set():
    # only the top bit of word 1 belongs to MT19937's 19937-bit state: not degenerate
    state = np.r_[np.uint32(0x80000000), np.zeros(623, np.uint32), 624].astype(np.uint32)
    mrng(_settings(state))
    t0 = time.perf_counter()
    z = ml.randn(1, 10)       # the rejection loop ends: the state mixes within ~1e5 draws
    assert np.isfinite(z).all() and time.perf_counter() - t0 < 5
    u = ml.rand(1, 200000)
    assert 0 <= u.min() and u.max() < 1 and (u[0, -1000:] > 0).mean() > 0.9


@pytest.mark.parametrize("state, exc, match", [
    (np.zeros(624, np.uint32), ValueError, r"^rng: State must be 625 uint32 values.*got 624"),
    (np.r_[np.ones(624), 625], ValueError, r"^rng: State\(625\) must be a position"),
    (np.r_[np.ones(624), -1], ValueError, r"^rng: State must be 625 .*got the value -1"),
    (np.r_[np.full(624, 0.5), 3], ValueError, r"^rng: State must be 625 .*got the value 0\.5"),
    (np.r_[np.full(624, 2.0**32), 3], ValueError, r"^rng: State must be 625"),
    (np.r_[np.full(624, np.nan), 3], ValueError, r"^rng: State must be 625"),
    (np.array(["a"] * 625), TypeError, r"^rng: State must be 625"),
    (None, TypeError, r"^rng: State must be 625"),
])
def test_rng_validates_every_state_word(state, exc, match):
    before = mrng()
    with pytest.raises(exc, match=match):
        mrng(_settings(state))
    assert mrng() == before


def test_rng_checks_the_seed_before_changing_the_state():
    before = mrng()
    other = mrng(7)
    ml.rand(1, 3)
    with pytest.raises(ValueError, match=r"^rng: seed"):
        mrng(_settings(other.State, seed=-1))
    mrng(before)


def test_a_valid_state_roundtrips():
    mrng(11)
    s = mrng()
    a = ml.randn(3, 4)
    mrng(_settings(s.State, 11))
    np.testing.assert_array_equal(ml.randn(3, 4), a)


# ------------------------------------------------------------------ 5. wrapping integers

@pytest.mark.parametrize("make, name", [
    (lambda: ml.convolution2dLayer(3, 2**63), "NumFilters"),
    (lambda: ml.convolution2dLayer(3, 4, Stride=1e20), "Stride"),
    (lambda: ml.convolution2dLayer(3, 4, DilationFactor=2**64 - 1), "DilationFactor"),
    (lambda: ml.convolution2dLayer(3, 4, DilationFactor=2**64), "DilationFactor"),
    (lambda: ml.convolution2dLayer(3, 4, DilationFactor=[1, 2**70]), "DilationFactor"),
    (lambda: ml.convolution1dLayer(2**31, 4), "FilterSize"),
    (lambda: ml.convolution2dLayer(3, 4, Padding=2**40), "Padding"),
    (lambda: ml.fullyConnectedLayer(np.uint64(2**63)), "OutputSize"),
    (lambda: ml.imageInputLayer([2**63, 3, 1]), "InputSize"),
    (lambda: ml.transposedConv2dLayer(3, 4, Cropping=np.uint64(2**64 - 1)), "Cropping"),
])
def test_integers_beyond_the_index_range_are_refused(make, name):
    with pytest.raises(ValueError, match=rf"^\w+: {name} must be .*at most 2147483647"):
        make()


def test_the_largest_allowed_integer_is_stored_exactly():
    layer = ml.convolution2dLayer(3, 2**31 - 1)
    assert layer.NumFilters == 2**31 - 1
    layer = ml.convolution2dLayer(3, 4, Stride=np.uint64(2**31 - 1))
    assert list(layer.Stride) == [2**31 - 1] * 2


def test_assignment_goes_through_the_same_bound():
    layer = ml.convolution2dLayer(3, 4)
    with pytest.raises(ValueError, match=r"^Convolution2DLayer: Stride must be .*at most"):
        layer.Stride = 2**63
    assert list(layer.Stride) == [1, 1]


# ------------------------------------------------------------------ 6. errors that name nothing

@pytest.mark.parametrize("call, fname", [
    (lambda: ml.rand(2**40), "rand"),
    (lambda: ml.rand(3, 2**62), "rand"),
    (lambda: ml.randn(2**63), "randn"),
    (lambda: ml.rand([2**33, 2**33], "single"), "rand"),
    (lambda: ml.rand(0, 2**62), "rand"),
])
def test_huge_random_arrays_name_the_function(call, fname):
    with pytest.raises(ValueError, match=rf"^{fname}: "):
        call()


def test_huge_random_array_message_names_the_size_and_bytes():
    with pytest.raises(ValueError) as info:
        ml.rand(3, 2**62)
    msg = str(info.value)
    assert "3×4611686018427387904" in msg and str(3 * 2**62 * 8) in msg


def test_huge_layer_initialization_names_layer_learnable_and_bytes():
    layer = ml.transposedConv3dLayer(100000, 3, Name="big")
    x = ml.dlarray(np.zeros((2, 2, 2, 2, 1), np.float32), "SSSCB")
    with pytest.raises(ValueError) as info:
        layer.predict(x)
    msg = str(info.value)
    assert msg.startswith("predict: Weights of TransposedConvolution3DLayer 'big'")
    assert str(100000**3 * 3 * 2 * 8) in msg and "bytes" in msg
    assert np.size(layer.Weights) == 0    # nothing was half-initialized


def test_scalar_weights_error_says_what_it_got():
    with pytest.raises(ValueError) as info:
        ml.convolution1dLayer(3, 4, Weights=np.float64(1.0))
    msg = str(info.value)
    assert msg.startswith("convolution1dLayer: Weights must be of size")
    assert not msg.rstrip().endswith("got")
    assert msg.endswith("got a scalar (1)")
