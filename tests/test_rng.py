"""MATLAB's random stream: golden values (MATLAB_SEMANTICS §5.2, §8.15), sizes, state."""
import numpy as np
import pytest

from mlayers._rng import RandomSettings, rand, randn
from mlayers._rng import rng as mrng   # ``rng`` is the conftest generator fixture


@pytest.fixture(autouse=True)
def _keep_stream():
    """Leave MATLAB's global stream as each test found it."""
    saved = mrng()
    yield
    mrng(saved)


# --------------------------------------------------------------------------- golden

def test_rand_seed0_golden():
    mrng(0)
    np.testing.assert_allclose(rand(1, 5), [[0.8147, 0.9058, 0.1270, 0.9134, 0.6324]],
                               atol=5e-5)
    np.testing.assert_allclose(rand(1, 2), [[0.0975, 0.2785]], atol=5e-5)


def test_rand_2x2_column_major():
    mrng(0)
    np.testing.assert_allclose(rand(2, 2), [[0.8147, 0.1270], [0.9058, 0.9134]], atol=5e-5)


def test_rand_3x4x2_pages():
    mrng("default")
    x = rand(3, 4, 2)
    np.testing.assert_allclose(x[:, :, 0], [[0.8147, 0.9134, 0.2785, 0.9649],
                                            [0.9058, 0.6324, 0.5469, 0.1576],
                                            [0.1270, 0.0975, 0.9575, 0.9706]], atol=5e-5)
    np.testing.assert_allclose(x[:, :, 1], [[0.9572, 0.1419, 0.7922, 0.0357],
                                            [0.4854, 0.4218, 0.9595, 0.8491],
                                            [0.8003, 0.9157, 0.6557, 0.9340]], atol=5e-5)
    assert x.flags.f_contiguous


def test_rand_seed_123456789():
    mrng(123456789)
    np.testing.assert_allclose(rand(1, 5)[0], [0.532833, 0.534137, 0.509553, 0.713564,
                                               0.256999], atol=5e-7)


def test_seed0_default_and_5489_are_the_same_stream_exactly():
    mrng(0)
    a = rand(1, 10)
    mrng("default")
    b = rand(1, 10)
    ref = np.random.RandomState(5489).random_sample(10)
    np.testing.assert_array_equal(a[0], ref)
    np.testing.assert_array_equal(b[0], ref)


def test_seed_s_is_init_genrand_s():
    mrng(42)
    np.testing.assert_array_equal(rand(1, 4)[0], np.random.RandomState(42).random_sample(4))


def test_startup_state_is_matlab_default():
    # A fresh interpreter starts as MATLAB does: seed 0 == init_genrand(5489).
    import subprocess
    import sys
    code = ("from mlayers._rng import rand, rng; "
            "print(rng().Seed, *rand(1, 3).ravel().round(4))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.split()
    assert out == ["0", "0.8147", "0.9058", "0.127"]


def test_glorot_package_example():
    # §5.2 package-defined example: seed 0, Glorot on 2×1×1 weights.
    mrng(0)
    w = np.sqrt(6 / 4) * (2 * rand(2, 1, 1) - 1)
    np.testing.assert_allclose(w.ravel(order="F"), [0.770912, 0.993983], atol=5e-6)


# --------------------------------------------------------------------------- sizes

@pytest.mark.parametrize("fn", [rand, randn])
@pytest.mark.parametrize("args, shape", [
    ((), (1, 1)),
    ((3,), (3, 3)),
    ((2, 3), (2, 3)),
    ((2, 3, 4), (2, 3, 4)),
    (((2, 3, 4),), (2, 3, 4)),
    (([2, 3, 4],), (2, 3, 4)),
    ((np.array([2, 3]),), (2, 3)),
    ((np.array([[2, 3]]),), (2, 3)),
    (([5],), (5, 5)),
    ((3, 1, 1), (3, 1, 1)),          # trailing singletons given are kept
    (([3, 3, 16, 1],), (3, 3, 16, 1)),
    ((0, 3), (0, 3)),
    ((-2, 3), (0, 3)),               # MATLAB: negative sizes count as 0
    ((np.int64(2), 3.0), (2, 3)),
    (([],), (0, 0)),
])
def test_size_forms(fn, args, shape):
    x = fn(*args)
    assert x.shape == shape
    assert x.dtype == np.float64
    assert x.flags.f_contiguous


@pytest.mark.parametrize("fn", [rand, randn])
def test_classname(fn):
    mrng(0)
    s = fn(2, 3, "single")
    mrng(0)
    d = fn(2, 3, "double")
    assert s.dtype == np.float32 and d.dtype == np.float64
    assert s.flags.f_contiguous
    np.testing.assert_array_equal(s, d.astype(np.float32))   # doubles drawn, then cast
    assert fn("Single").shape == (1, 1)
    assert fn([2, 2], "single").dtype == np.float32


def test_column_major_fill_matches_flat_stream():
    mrng(7)
    x = rand(2, 3, 4)
    mrng(7)
    flat = rand(1, 24)[0]
    np.testing.assert_array_equal(x.ravel(order="F"), flat)


def test_randn_column_major_same_state():
    mrng(3)
    x = randn(3, 5)
    ref = np.random.RandomState(3).standard_normal(15).reshape((3, 5), order="F")
    np.testing.assert_array_equal(x, ref)


def test_reseeding_clears_randn_cache():
    mrng(0)
    randn(1, 1)                  # numpy caches the second normal of the pair
    mrng(0)
    np.testing.assert_array_equal(randn(1, 4)[0],
                                  np.random.RandomState(5489).standard_normal(4))


def test_randn_distribution():
    mrng(0)
    x = randn(200, 500)
    assert abs(x.mean()) < 0.01
    assert abs(x.std() - 1) < 0.01


def test_rand_range():
    mrng(0)
    x = rand(100, 100)
    assert x.min() > 0 and x.max() < 1


@pytest.mark.parametrize("fn", [rand, randn])
@pytest.mark.parametrize("args, exc, msg", [
    ((2.5,), ValueError, "size inputs must be integers, got 2.5"),
    ((2, np.nan), ValueError, "size inputs must be finite integers, got nan"),
    ((np.inf,), ValueError, "must be finite"),
    ((True,), TypeError, "size inputs must be real integers, got True"),
    ((None,), TypeError, "size inputs must be real integers, got None"),
    ((2, 3, "int8"), ValueError, "classname must be 'double' or 'single', got 'int8'"),
    (("single", 3), TypeError, "classname must be the last argument"),
    (([2, 3], 4), TypeError, "a size vector must be the only size input"),
    ((np.ones((2, 2)),), ValueError, "size vector must be a row vector of integers, got a 2×2"),
    (([2, "a"],), TypeError, "size inputs must be real integers, got 'a'"),
    ((1 + 2j,), TypeError, "size inputs must be real integers"),
])
def test_size_errors(fn, args, exc, msg):
    with pytest.raises(exc, match=f"^{fn.__name__}: ") as info:
        fn(*args)
    assert msg in str(info.value)


# --------------------------------------------------------------------------- rng

def test_rng_returns_previous_settings_and_restores():
    mrng(0)
    rand(1, 3)
    s = mrng()                   # no argument: settings, stream untouched
    assert isinstance(s, RandomSettings)
    assert s.Type == "twister" and s.Seed == 0
    assert s.State.shape == (625,) and s.State.dtype == np.uint32
    u1 = rand(2, 2)
    prev = mrng(s)
    assert prev.Seed == 0 and prev != s
    np.testing.assert_array_equal(rand(2, 2), u1)


def test_rng_seed_returns_state_before_change():
    mrng(5)
    before = mrng()
    t = mrng(9)
    assert t == before and t.Seed == 5
    assert mrng().Seed == 9


def test_state_layout_after_seeding():
    s = mrng(0) and mrng()
    assert s.State[0] == 5489      # mt[0] = init_genrand's seed
    assert s.State[624] == 624     # position: next draw regenerates


def test_restore_preserves_randn_cache():
    mrng(1)
    randn(1, 1)                  # leaves one cached normal in numpy's state
    s = mrng()
    a = randn(1, 3)
    mrng(s)
    np.testing.assert_array_equal(randn(1, 3), a)


def test_restore_from_mapping():
    mrng(11)
    s = mrng()
    a = rand(1, 4)
    mrng({"Type": "twister", "Seed": s.Seed, "State": s.State.reshape(625, 1)})
    np.testing.assert_array_equal(rand(1, 4), a)
    assert mrng().Seed == 11


def test_shuffle_and_generator():
    mrng("shuffle")
    s = mrng()
    assert 0 <= s.Seed < 2**32
    mrng(3, "twister")
    assert mrng().Seed == 3
    mrng(4, "default")
    assert mrng().Seed == 4


def test_settings_repr():
    mrng(0)
    assert repr(mrng()) == ("  struct with fields:\n\n     Type: 'twister'\n"
                            "     Seed: 0\n    State: [625×1 uint32]\n")


@pytest.mark.parametrize("args, exc, msg", [
    ((-1,), ValueError, "rng: seed must be a nonnegative integer less than 2^32, got -1"),
    ((2**32,), ValueError, "rng: seed must be a nonnegative integer less than 2^32"),
    ((1.5,), ValueError, "rng: seed must be a nonnegative integer less than 2^32, got 1.5"),
    ((float("nan"),), ValueError, "rng: seed must be"),
    (("foo",), ValueError, "rng: seed must be a nonnegative integer less than 2^32, "
                           "'default' or 'shuffle', got 'foo'"),
    ((True,), TypeError, "rng: seed must be"),
    (([1, 2],), TypeError, "rng: seed must be"),
    ((0, "philox"), ValueError, "rng: generator must be 'twister'"),
    ((0, 3), TypeError, "rng: generator must be a string"),
    ((None, "twister"), TypeError, "rng: a generator needs a seed"),
    (({"Seed": 0},), TypeError, "rng: settings must be"),
    (({"Type": "twister", "Seed": 0, "State": np.zeros(3)},), ValueError,
     "rng: State must be 625 uint32 values"),
])
def test_rng_errors(args, exc, msg):
    with pytest.raises(exc) as info:
        mrng(*args)
    assert msg in str(info.value)


def test_failed_rng_call_leaves_stream_alone():
    mrng(0)
    s = mrng()
    with pytest.raises(ValueError):
        mrng(-3)
    assert mrng() == s


def test_like_takes_the_prototypes_precision_and_dlarray_type():
    # MATLAB's samplingLayer: epsilon = randn(numLatentChannels, miniBatchSize, "like", X)
    from mlayers import dlarray
    X = dlarray(np.zeros((4, 5), np.float32), "CB")
    mrng(0)
    e = randn(4, 5, "like", X)
    assert type(e) is dlarray and e.dims == "" and e.shape == (4, 5) and e.data.dtype == np.float32
    mrng(0)
    np.testing.assert_array_equal(e.data, randn(4, 5, "single"))   # the same stream
    assert rand(2, 3, "Like", np.zeros(1)).dtype == np.float64
    assert type(rand([2, 3], "like", np.zeros(1, np.float32))) is np.ndarray
    with pytest.raises(TypeError, match="randn: the prototype after 'like' must be single or "
                                        "double data, got int32"):
        randn(2, "like", np.zeros(2, np.int32))
    # MATLAB's name=value form, randn([100 5], like=X) (the WGAN-GP example)
    mrng(0)
    k = randn([4, 5], like=X)
    assert type(k) is dlarray and k.data.dtype == np.float32
    np.testing.assert_array_equal(k.data, e.data)
    with pytest.raises(TypeError, match="rand: the only name-value argument is like=p"):
        rand(2, Like2=X)


def test_zeros_and_ones_take_matlabs_size_forms_and_leave_the_stream():
    import mlayers as ml
    mrng(0)
    first = rand()
    mrng(0)
    z = ml.zeros(2, 3, "single")
    assert z.shape == (2, 3) and z.dtype == np.float32 and z.flags.f_contiguous and not z.any()
    assert ml.ones(3).shape == (3, 3) and ml.ones([2, 1, 1]).shape == (2, 1, 1)
    o = ml.ones(2, "like", ml.dlarray(np.zeros(1, np.float32)))
    assert type(o) is ml.dlarray and o.data.dtype == np.float32 and o.data.sum() == 4
    assert rand() == first                          # no draw from the stream
    with pytest.raises(ValueError, match="zeros: classname must be 'double' or 'single'"):
        ml.zeros(2, "int8")


def test_like_a_python_number_is_double_and_a_missing_prototype_is_named():
    assert rand(2, "like", 1).dtype == np.float64
    with pytest.raises(TypeError, match="rand: 'like' must be followed by a prototype array"):
        rand(2, "like")
