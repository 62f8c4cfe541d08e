"""dlarray: MATLAB's canonical format order (MATLAB_SEMANTICS §1.3, §8.12, §8.13)."""
import pickle

import numpy as np
import pytest

from mlayers.dlarray import (as_formatted, dims, dlarray, extractdata, finddim, size,
                             stripdims)


def _arange(*shape, order="C"):
    return np.arange(float(np.prod(shape))).reshape(shape, order=order)


# --------------------------------------------------------------------------- canonical order

def test_ts_becomes_st():                       # §1.3 dims page, §8.12
    x = _arange(3, 4)
    X = dlarray(x, "TS")
    assert X.dims == "ST" and dims(X) == "ST"
    assert X.shape == (4, 3)
    np.testing.assert_array_equal(extractdata(X), x.T)


def test_bcss_becomes_sscb():                   # §8.12, MATLAB's help example
    x = _arange(2, 3, 5, 4)                     # (B, C, H, W)
    X = dlarray(x, "BCSS")
    assert X.dims == "SSCB"
    assert X.shape == (5, 4, 3, 2)
    np.testing.assert_array_equal(X.data, x.transpose(2, 3, 1, 0))


@pytest.mark.parametrize("fmt, out, perm", [
    ("SSCB", "SSCB", (0, 1, 2, 3)),
    ("CBT", "CBT", (0, 1, 2)),
    ("TCB", "CBT", (1, 2, 0)),
    ("UUSC", "SCUU", (2, 3, 0, 1)),             # repeated U keeps its order
    ("SCSB", "SSCB", (0, 2, 1, 3)),             # repeated S keeps its order
    ("BTCS", "SCBT", (3, 2, 0, 1)),
    ("ucsb", "SCBU", (2, 1, 3, 0)),             # case-insensitive
])
def test_stable_canonical_sort(fmt, out, perm):
    shape = (2, 3, 4, 5)[:len(fmt)]
    x = _arange(*shape)
    X = dlarray(x, fmt)
    assert X.dims == out
    np.testing.assert_array_equal(X.data, x.transpose(perm))


def test_extra_labels_add_trailing_singletons():
    x = _arange(5, 4, 3)
    X = dlarray(x, "SSCB")                      # B = 1 stays visible
    assert X.dims == "SSCB" and X.shape == (5, 4, 3, 1)
    X = dlarray(np.arange(3.0), "CB")           # 1-D data is a MATLAB column
    assert X.dims == "CB" and X.shape == (3, 1)
    X = dlarray(np.float64(2.0), "SSCB")
    assert X.shape == (1, 1, 1, 1)


def test_extra_label_in_middle_after_permutation():
    x = _arange(3, 4)
    X = dlarray(x, "TCB")                       # B = 1 moves before T
    assert X.dims == "CBT" and X.shape == (4, 1, 3)
    np.testing.assert_array_equal(X.data[:, 0, :], x.T)


def test_trailing_singleton_numpy_axes_need_no_labels():
    x = _arange(3, 4)[:, :, None, None]         # MATLAB ignores trailing singletons
    X = dlarray(x, "SS")
    assert X.dims == "SS" and X.shape == (3, 4)


@pytest.mark.parametrize("shape, fmt, out, out_shape", [
    ((3, 4, 1), "SCBU", "SCB", (3, 4, 1)),      # U dropped, B kept
    ((3, 4), "CBU", "CB", (3, 4)),
    ((3, 1), "CU", "CU", (3, 1)),               # second dimension is kept
    ((3,), "UUU", "UU", (3, 1)),
    ((3, 1, 4), "SUU", "SUU", (3, 1, 4)),       # not trailing: kept
    ((3, 4, 2, 1), "SSUU", "SSU", (3, 4, 2)),
])
def test_trailing_singleton_u_dropped(shape, fmt, out, out_shape):
    X = dlarray(np.zeros(shape), fmt)
    assert X.dims == out and X.shape == out_shape


# --------------------------------------------------------------------------- memory

def test_fortran_input_is_not_copied():         # §1.2, §8.13
    xf = np.asfortranarray(_arange(5, 4, 3, 2))
    X = dlarray(xf, "SSCB")
    assert np.shares_memory(X.data, xf)
    assert X.data.flags.f_contiguous
    assert extractdata(X) is X.data


def test_fortran_input_permuted_and_padded_is_not_copied():
    xf = np.asfortranarray(_arange(2, 3, 5, 4))
    X = dlarray(xf, "BCSS")
    assert np.shares_memory(X.data, xf)
    xf3 = np.asfortranarray(_arange(5, 4, 3))
    X = dlarray(xf3, "SSCB")
    assert np.shares_memory(X.data, xf3) and X.shape == (5, 4, 3, 1)
    assert X.data.flags.f_contiguous
    X = dlarray(np.asfortranarray(_arange(5, 4, 3, 1, 1)), "SSCB")
    assert X.shape == (5, 4, 3, 1)


def test_c_and_f_input_give_same_data():
    x = _arange(5, 4, 3, 2)
    a = dlarray(x, "SSCB")
    b = dlarray(np.asfortranarray(x), "SSCB")
    np.testing.assert_array_equal(a.data, b.data)
    assert np.shares_memory(a.data, x)


def test_float32_kept_float64_kept():
    for dt in (np.float32, np.float64):
        x = np.ones((2, 3), dtype=dt)
        X = dlarray(x, "CB")
        assert X.dtype == dt and np.shares_memory(X.data, x)


@pytest.mark.parametrize("dt", [np.int8, np.int64, np.uint16, bool])
def test_integer_and_logical_become_double(dt):
    X = dlarray(np.ones((2, 3), dtype=dt), "CB")
    assert X.dtype == np.float64
    assert X.data.sum() == 6


def test_list_input_and_float16():
    assert dlarray([[1, 2], [3, 4]]).dtype == np.float64
    assert dlarray(np.ones(3, np.float16), "C").dtype == np.float32


def test_big_endian_made_native():
    x = np.arange(6.0).astype(">f8").reshape(2, 3)
    X = dlarray(x, "CB")
    assert X.dtype.isnative
    np.testing.assert_array_equal(X.data, x)


@pytest.mark.parametrize("x", [np.ones(3, complex), np.array(["a", "b"]),
                               np.array([object()]), np.array(["2020-01-01"], "M8[D]")])
def test_bad_data_types(x):
    with pytest.raises(TypeError, match=r"^dlarray: X must be a real numeric or logical array, "
                                        r"got dtype"):
        dlarray(x, "CB")


# --------------------------------------------------------------------------- construction

def test_unformatted():
    x = _arange(3, 2)
    X = dlarray(x)
    assert X.dims == "" and dims(X) == ""
    assert X.data is x
    assert finddim(X, "S") == []


def test_dlarray_of_dlarray():
    x = _arange(32, 3, 4, 4)
    Z1 = dlarray(x)
    Z2 = dlarray(Z1, "BCSS")                    # MATLAB help: 4(S) × 4(S) × 3(C) × 32(B)
    assert Z2.dims == "SSCB" and Z2.shape == (4, 4, 3, 32)
    assert np.shares_memory(Z2.data, x)
    Z3 = dlarray(Z2)                            # no fmt: unchanged
    assert Z3.dims == "SSCB" and Z3.data is Z2.data
    Z4 = dlarray(Z2, "UUUU")                    # fmt replaces the format of the stored data
    assert Z4.dims == "UUUU" and Z4.shape == (4, 4, 3, 32)


def test_from_canonical_and_with_data():
    d = np.zeros((3, 3, 2, 1), order="F")
    Y = dlarray._from_canonical(d, "SSCB")
    assert Y.dims == "SSCB" and Y.data is d
    Z = Y._with_data(d[:2])
    assert Z.dims == "SSCB" and Z.shape == (2, 3, 2, 1)
    assert Y._with_data(d[..., 0, 0], "SS").dims == "SS"


def test_array_protocol_and_attributes():
    x = _arange(3, 4)
    X = dlarray(x, "SC")
    assert np.asarray(X) is X.data
    assert np.asarray(X, dtype=np.float32).dtype == np.float32
    assert not np.shares_memory(np.array(X, copy=True), x)
    with pytest.raises(ValueError):
        np.asarray(X, dtype=np.float32, copy=False)
    assert len(X) == 3 and X.ndim == 2 and X.dtype == np.float64
    np.testing.assert_array_equal(np.sum(X, axis=0), x.sum(0))


def test_pickle_round_trip():
    X = dlarray(_arange(2, 3, 4), "BCS")
    Y = pickle.loads(pickle.dumps(X))
    assert Y.dims == X.dims
    np.testing.assert_array_equal(Y.data, X.data)


# --------------------------------------------------------------------------- errors

@pytest.mark.parametrize("fmt, msg", [
    ("SXC", "dlarray: fmt must contain only the labels S, C, B, T and U, got 'SXC'"),
    ("S C", "dlarray: fmt must contain only the labels S, C, B, T and U, got 'S C'"),
    ("CCB", "dlarray: fmt must contain the label C at most once, got 'CCB'"),
    ("SBB", "dlarray: fmt must contain the label B at most once, got 'SBB'"),
    ("TCT", "dlarray: fmt must contain the label T at most once, got 'TCT'"),
    ("SC", "dlarray: fmt must have at least as many labels as the data has dimensions "
           "(3 for 2×3×4 data), got 'SC'"),
])
def test_format_value_errors(fmt, msg):
    with pytest.raises(ValueError) as info:
        dlarray(np.zeros((2, 3, 4)), fmt)
    assert str(info.value).startswith(msg)


@pytest.mark.parametrize("fmt", [3, None, ["S", "C"], b"SC"])
def test_format_type_errors(fmt):
    with pytest.raises(TypeError, match=r"^dlarray: fmt must be a string"):
        dlarray(np.zeros((2, 3)), fmt)


# --------------------------------------------------------------------------- functions

def test_finddim():
    X = dlarray(np.zeros((6, 5, 4, 3, 2)), "SSCBT")
    assert finddim(X, "S") == [1, 2]
    assert finddim(X, "C") == [3]
    assert finddim(X, "b") == [4]
    assert finddim(X, "T") == [5]
    assert finddim(X, "U") == []
    with pytest.raises(ValueError, match="^finddim: label must be one of"):
        finddim(X, "SC")
    with pytest.raises(TypeError, match="^finddim: label must be one of"):
        finddim(X, 1)


def test_stripdims():
    x = _arange(5, 4, 3, 2)
    X = dlarray(x, "SSCB")
    Y = stripdims(X)
    assert Y.dims == "" and Y.data is X.data
    Y = stripdims(X, "BCSS")
    assert Y.dims == "" and Y.shape == (2, 3, 5, 4)
    np.testing.assert_array_equal(Y.data, x.transpose(3, 2, 0, 1))
    assert np.shares_memory(Y.data, x)
    # Round trip: dlarray(stripdims(X, fmt), fmt) is X again.
    np.testing.assert_array_equal(dlarray(Y, "BCSS").data, X.data)


def test_stripdims_superset_and_unformatted():
    X = dlarray(_arange(5, 4, 3), "SSC")
    Y = stripdims(X, "BCSST")
    assert Y.shape == (1, 3, 5, 4, 1)
    U = dlarray(_arange(2, 3))
    assert stripdims(U, "CB").data is U.data       # MATLAB: unformatted X is returned
    with pytest.raises(ValueError, match=r"^stripdims: fmt must contain every label of "
                                         r"dims\(X\) \('SSC'\), got 'SC'"):
        stripdims(X, "SC")
    with pytest.raises(ValueError, match="^stripdims: fmt must contain the label C at most"):
        stripdims(X, "SSCC")


def test_size_matlab_style():
    assert size(dlarray(np.zeros((3, 3, 16, 1)), "SSCB")) == (3, 3, 16)
    assert size(dlarray(np.zeros((3, 1)), "CB")) == (3, 1)
    assert size(dlarray(np.zeros(4))) == (4, 1)
    assert size(np.zeros((2, 3, 1, 1))) == (2, 3)
    X = dlarray(np.zeros((3, 3, 16, 2)), "SSCB")
    assert size(X, 3) == 16 and size(X, 7) == 1
    with pytest.raises(ValueError, match="^size: dim must be a positive integer, got 0"):
        size(X, 0)


def test_function_type_errors():
    for fn in (dims, extractdata, stripdims):
        with pytest.raises(TypeError, match=f"^{fn.__name__}: X must be a dlarray, got ndarray"):
            fn(np.zeros(3))
    with pytest.raises(TypeError, match="^finddim: X must be a dlarray"):
        finddim(np.zeros(3), "S")


# --------------------------------------------------------------------------- as_formatted

def test_as_formatted():
    X = dlarray(np.zeros((4, 4, 3, 2)), "SSCB")
    assert as_formatted(X) is X
    xf = np.asfortranarray(_arange(2, 3, 4, 4))
    Y = as_formatted(xf, "BCSS", "dlconv")
    assert Y.dims == "SSCB" and np.shares_memory(Y.data, xf)
    Y = as_formatted(dlarray(xf), "BCSS")
    assert Y.dims == "SSCB"


@pytest.mark.parametrize("X, fmt, exc, msg", [
    (np.zeros((3, 4)), None, ValueError,
     "dlconv: X must be a formatted dlarray, or DataFormat must be given, "
     "got a 3×4 float64 array"),
    (dlarray(np.zeros((3, 4))), "", ValueError,
     "dlconv: X must be a formatted dlarray, or DataFormat must be given, "
     "got an unformatted 3×4 dlarray"),
    (dlarray(np.zeros((3, 4)), "CB"), "CB", ValueError,
     "dlconv: DataFormat must not be given for a formatted dlarray (dims 'CB'), got 'CB'"),
    (np.zeros((3, 4)), "CC", ValueError,
     "dlconv: DataFormat must contain the label C at most once, got 'CC'"),
    (np.zeros((3, 4, 2)), "CB", ValueError,
     "dlconv: DataFormat must have at least as many labels"),
    (np.zeros((3, 4)), 5, TypeError, "dlconv: DataFormat must be a string"),
    (np.ones(3, complex), "CB", TypeError, "dlconv: X must be a real numeric"),
])
def test_as_formatted_errors(X, fmt, exc, msg):
    with pytest.raises(exc) as info:
        as_formatted(X, fmt, fname="dlconv")
    assert str(info.value).startswith(msg)


# --------------------------------------------------------------------------- display

def test_display_formatted_header():
    X = dlarray(np.zeros((3, 2, 1, 2)), "SSTU")          # MATLAB's stripdims example
    assert repr(X).splitlines()[0] == "  3(S) × 2(S) × 1(T) × 2(U) dlarray"
    assert str(X) == repr(X)


def test_display_unformatted_and_single():
    assert repr(dlarray(np.zeros((3, 2, 1, 2)))).splitlines()[0] == "  3×2×1×2 dlarray"
    assert repr(dlarray(np.zeros((3, 2)))).splitlines()[0] == "  3×2 dlarray"
    X = dlarray(np.zeros((10, 1), np.float32), "CB")
    assert repr(X).splitlines()[0] == "  10(C) × 1(B) single dlarray"
    assert repr(dlarray(np.zeros((0, 3)), "CB")) == "  0(C) × 3(B) empty dlarray\n"


def test_display_pages_column_major():
    X = dlarray(np.arange(8.0).reshape((2, 2, 2, 1), order="F"), "SSCB")
    text = repr(X)
    # MATLAB's size drops the trailing singleton B: pages (:,:,k) of a 2x2x2 array
    assert "(:,:,1) =" in text and "(:,:,2) =" in text and "(:,:,1,1)" not in text
    assert text.index("(:,:,1)") < text.index("(:,:,2)")
    assert "    0    2\n    1    3" in text and "    4    6\n    5    7" in text


def test_display_numbers_as_matlab_short_format():
    one = repr(dlarray(np.full((1, 1, 1, 1), 0.6902, np.float32), "SSCB"))
    assert one.splitlines()[1:] == ["", "    0.6902"]         # a scalar, no page
    text = repr(dlarray(np.array([[1e6, -2.5], [np.nan, -np.inf]])))
    assert "1.0000e+06    -2.5000e+00" in text and "NaN           -Inf" in text
    assert "[" not in repr(dlarray(np.arange(6.0).reshape(2, 3) / 7))


def test_display_large_is_truncated():
    text = repr(dlarray(np.zeros((10, 10, 3, 64)), "SSCB"))
    assert "more pages" in text and len(text.splitlines()) < 400
    big = repr(dlarray(np.arange(4_000_000.0).reshape(2000, 2000)))   # one page, summarized
    assert len(big) < 2000 and "..." in big and "[" not in big
