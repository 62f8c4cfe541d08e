"""Bad input to mlayers._ops raises ValueError/TypeError naming the argument, never crashes.

STYLE.md: ``TypeError`` for a malformed call (wrong type), ``ValueError`` for a value of the
right type with a wrong size, range or format; the message names the MATLAB function
(``fname``) and the argument.
"""
import re

import numpy as np
import pytest

from mlayers import _ops

X2 = np.ones((5, 5, 4, 2))            # 2-D, 4 channels, 2 observations
W2 = np.ones((3, 3, 4, 6))            # conv: 3x3, Cg = 4, 6 filters
WT2 = np.ones((3, 3, 2, 4))           # tconv: 3x3, Fg = 2, 4 input channels
DY2 = np.ones((3, 3, 6, 2))           # conv output for X2, W2
DYT2 = np.ones((7, 7, 2, 2))          # tconv output for X2, WT2
X1, W1 = np.ones((5, 1, 1)), np.ones((2, 1, 1))


def conv(**kw):
    return lambda: _ops.conv(**{"x": X2, "w": W2, **kw})


def tconv(**kw):
    return lambda: _ops.conv_transpose(**{"x": X2, "w": WT2, **kw})


def conv_bwd(**kw):
    return lambda: _ops.conv_backward(**{"x": X2, "w": W2, "dy": DY2, **kw})


def tconv_bwd(**kw):
    return lambda: _ops.conv_transpose_backward(**{"x": X2, "w": WT2, "dy": DYT2, **kw})


V, T = ValueError, TypeError
VT = (ValueError, TypeError)

CASES = [
    # ---- ranks
    ("x-rank-low", conv(x=np.ones((5, 4, 2))), V, r"\bX\b"),
    ("x-rank-high", conv(x=np.ones((5, 5, 5, 4, 2))), V, r"\bX\b"),
    ("x-rank-tconv", tconv(x=np.ones((5, 4, 2))), V, r"\bX\b"),
    ("w-rank-no-spatial", conv(w=np.ones((4, 6))), V, r"weights"),
    ("w-rank-4-spatial", conv(x=np.ones((2,) * 6), w=np.ones((1,) * 6)), V, r"weights"),
    ("w-rank-1", conv(w=np.ones(3)), V, r"weights"),
    ("dy-rank", conv_bwd(dy=np.ones((3, 3, 6))), V, r"dLdY"),
    # ---- channels and groups
    ("channel-mismatch", conv(w=np.ones((3, 3, 3, 6))), V, r"\bX\b.*channels|channels"),
    ("channel-mismatch-tconv", tconv(w=np.ones((3, 3, 2, 3))), V, r"channels"),
    ("channel-mismatch-grouped", conv(w=np.ones((3, 3, 2, 6)), groups=3), V, r"channels"),
    ("groups-not-dividing-filters", conv(w=np.ones((3, 3, 1, 6)), groups=4), V, r"groups"),
    ("groups-not-dividing-tconv", tconv(w=np.ones((3, 3, 2, 4)), groups=3), V, r"groups"),
    ("groups-zero", conv(groups=0), VT, r"groups"),
    ("groups-negative", conv(groups=-2), VT, r"groups"),
    ("groups-fraction", conv(groups=1.5), VT, r"groups"),
    ("groups-none", conv(groups=None), VT, r"groups"),
    ("groups-bool", conv(groups=True), VT, r"groups"),
    ("groups-bwd", conv_bwd(w=np.ones((3, 3, 1, 6)), groups=4), V, r"groups"),
    # ---- stride, dilation
    ("stride-zero", conv(stride=0), V, r"Stride"),
    ("stride-negative", conv(stride=[1, -1]), V, r"Stride"),
    ("stride-fraction", conv(stride=1.5), V, r"Stride"),
    ("stride-length", conv(stride=[1, 1, 1]), V, r"Stride"),
    ("stride-nan", conv(stride=np.nan), V, r"Stride"),
    ("stride-inf", conv(stride=np.inf), V, r"Stride"),
    ("stride-string", conv(stride="2"), T, r"Stride"),
    ("stride-none", conv(stride=None), T, r"Stride"),
    ("stride-bool", conv(stride=True), T, r"Stride"),
    ("stride-complex", conv(stride=1 + 1j), T, r"Stride"),
    ("stride-tconv", tconv(stride=0), V, r"Stride"),
    ("stride-bwd", conv_bwd(stride=-1), V, r"Stride"),
    ("stride-tconv-bwd", tconv_bwd(stride=0), V, r"Stride"),
    ("dilation-zero", conv(dilation=0), V, r"DilationFactor"),
    ("dilation-negative", conv(dilation=[-1, 1]), V, r"DilationFactor"),
    ("dilation-tconv", tconv(dilation=0), V, r"DilationFactor"),
    ("dilation-bwd", conv_bwd(dilation=0), V, r"DilationFactor"),
    # ---- padding, cropping, offset
    ("padding-negative", conv(padding=-1), V, r"Padding"),
    ("padding-negative-matrix", conv(padding=np.array([[1, 1], [0, -1]])), V, r"Padding"),
    ("padding-fraction", conv(padding=0.5), V, r"Padding"),
    ("padding-shape", conv(padding=np.ones((3, 2), int)), V, r"Padding"),
    ("padding-length", conv(padding=[1, 1, 1]), V, r"Padding"),
    ("padding-string", conv(padding="same"), T, r"Padding"),
    ("padding-bwd", conv_bwd(padding=-1), V, r"Padding"),
    ("cropping-negative", tconv(cropping=-1), V, r"Cropping"),
    ("cropping-negative-matrix", tconv(cropping=np.array([[0, 0], [-1, 0]])), V, r"Cropping"),
    ("cropping-bwd", tconv_bwd(cropping=-1), V, r"Cropping"),
    ("offset-negative", tconv(offset=-1), V, r"offset"),
    ("offset-fraction", tconv(offset=0.5), V, r"offset"),
    ("offset-bwd", tconv_bwd(offset=-1), V, r"offset"),
    # ---- empty geometry
    ("empty-output", conv(w=np.ones((7, 3, 4, 6))), V, r"spatial dimension 1.*empty"),
    ("empty-output-dim2", conv(w=np.ones((3, 7, 4, 6))), V, r"spatial dimension 2"),
    ("empty-output-dilated", conv(dilation=3), V, r"spatial dimension 1.*empty"),
    ("empty-output-by-one", conv(w=np.ones((6, 3, 4, 6)), padding=0), V,
     r"spatial dimension 1"),
    ("empty-output-bwd", conv_bwd(w=np.ones((7, 3, 4, 6))), V, r"spatial dimension 1"),
    ("crop-everything", tconv(cropping=4), V, r"crop"),
    ("crop-everything-bwd", tconv_bwd(cropping=np.array([[0, 7], [0, 0]])), V, r"crop"),
    # ---- empty arrays (an empty batch is not an error: it gives an empty result,
    # issue 21 / docs/robustness.md, tested in test_robustness.py)
    ("empty-spatial", conv(x=np.ones((0, 5, 4, 1))), V, r"\bX\b"),
    ("empty-weights", conv(x=np.ones((5, 5, 0, 1)), w=np.ones((3, 3, 0, 6))), V, r"weights"),
    ("empty-filters", conv(w=np.ones((3, 3, 4, 0))), V, r"weights|groups"),
    # ---- data types
    ("x-int", conv(x=X2.astype(np.int64)), T, r"\bX\b"),
    ("x-int32", conv(x=X2.astype(np.int32)), T, r"\bX\b"),
    ("x-bool", conv(x=X2.astype(bool)), T, r"\bX\b"),
    ("x-complex", conv(x=X2.astype(complex)), T, r"\bX\b"),
    ("x-float16", conv(x=X2.astype(np.float16)), T, r"\bX\b"),
    ("x-object", conv(x=X2.astype(object)), T, r"\bX\b"),
    ("x-string", conv(x="abc"), T, r"\bX\b"),
    ("x-none", conv(x=None), T, r"\bX\b"),
    ("w-int", conv(w=W2.astype(np.int32)), T, r"weights"),
    ("w-bool", conv(w=W2.astype(bool)), T, r"weights"),
    ("w-complex", conv(w=W2.astype(np.complex64)), T, r"weights"),
    ("w-int-tconv", tconv(w=WT2.astype(np.int8)), T, r"weights"),
    ("x-int-tconv", tconv(x=X2.astype(np.uint8)), T, r"\bX\b"),
    ("bias-int", conv(bias=np.ones(6, int)), T, r"bias"),
    ("bias-complex", conv(bias=np.ones(6, complex)), T, r"bias"),
    ("bias-bool", tconv(bias=np.ones(2, bool)), T, r"bias"),
    ("dy-int", conv_bwd(dy=DY2.astype(int)), T, r"dLdY"),
    ("dy-complex", tconv_bwd(dy=DYT2.astype(complex)), T, r"dLdY"),
    ("x-int-bwd", conv_bwd(x=X2.astype(int)), T, r"\bX\b"),
    ("w-complex-tconv-bwd", tconv_bwd(w=WT2.astype(complex)), T, r"weights"),
    # ---- bias and dLdY sizes
    ("bias-size", conv(bias=np.ones(5)), V, r"bias"),
    ("bias-size-large", conv(bias=np.ones((1, 1, 12))), V, r"bias"),
    ("bias-size-tconv", tconv(bias=np.ones(4)), V, r"bias"),
    ("dy-spatial", conv_bwd(dy=np.ones((4, 3, 6, 2))), V, r"dLdY"),
    ("dy-channels", conv_bwd(dy=np.ones((3, 3, 5, 2))), V, r"dLdY"),
    ("dy-batch", conv_bwd(dy=np.ones((3, 3, 6, 1))), V, r"dLdY"),
    ("dy-tconv", tconv_bwd(dy=np.ones((7, 6, 2, 2))), V, r"dLdY"),
    ("dy-tconv-channels", tconv_bwd(dy=np.ones((7, 7, 4, 2))), V, r"dLdY"),
    # ---- PaddingValue
    ("mirror-include-too-long", conv(padding=6, padding_value="symmetric-include-edge"), V,
     r"(?i)padding"),
    ("mirror-exclude-too-long", conv(padding=5, padding_value="symmetric-exclude-edge"), V,
     r"(?i)padding"),
    ("mirror-too-long-dim2",
     conv(x=np.ones((8, 3, 4, 1)), padding=np.array([[0, 0], [0, 3]]),
          padding_value="symmetric-exclude-edge"), V, r"(?i)padding.*dimension 2"),
    ("mirror-too-long-1d", lambda: _ops.conv(X1, W1, padding=[[0], [5]],
                                             padding_value="symmetric-exclude-edge"),
     V, r"(?i)padding"),
    ("padding-value-unknown", conv(padding=1, padding_value="symmetric"), V, r"PaddingValue"),
    ("padding-value-misspelt", conv(padding=1, padding_value="replicat"), V, r"PaddingValue"),
    ("padding-value-none", conv(padding=1, padding_value=None), T, r"PaddingValue"),
    ("padding-value-vector", conv(padding=1, padding_value=[1.0, 2.0]), VT, r"PaddingValue"),
    ("padding-value-complex", conv(padding=1, padding_value=1j), T, r"PaddingValue"),
    # ---- threads
    ("threads-zero", lambda: _ops.set_num_threads(0), V, r"\bn\b"),
    ("threads-negative", lambda: _ops.set_num_threads(-1), V, r"\bn\b"),
    ("threads-fraction", lambda: _ops.set_num_threads(1.5), VT, r"\bn\b"),
    ("threads-context", lambda: _ops.threads(0).__enter__(), V, r"\bn\b"),
]


@pytest.mark.parametrize("name,call,exc,pattern", CASES, ids=[c[0] for c in CASES])
def test_bad_input_raises(name, call, exc, pattern):
    threads = _ops.get_num_threads()
    with pytest.raises(exc) as info:
        call()
    assert re.search(pattern, str(info.value)), str(info.value)
    assert _ops.get_num_threads() == threads


@pytest.mark.parametrize("call,fname", [
    (conv(stride=0), "dlconv"), (tconv(stride=0), "dltranspconv"),
    (lambda: _ops.conv(X2, W2, stride=0, fname="convolution2dLayer"), "convolution2dLayer"),
    (lambda: _ops.conv_transpose(X2, WT2, cropping=-1, fname="transposedConv2dLayer"),
     "transposedConv2dLayer"),
    (lambda: _ops.conv_backward(X2, W2, DY2[:2], fname="predict"), "predict"),
])
def test_messages_start_with_the_function_name(call, fname):
    with pytest.raises(VT) as info:
        call()
    assert str(info.value).startswith(fname + ": "), str(info.value)


def test_valid_edge_cases_still_work():
    # the limits themselves are accepted
    _ops.conv(X1, W1, padding=[[4], [4]], padding_value="symmetric-exclude-edge")
    _ops.conv(X1, W1, padding=[[5], [5]], padding_value="symmetric-include-edge")
    _ops.conv(X1, np.ones((5, 1, 1)))                               # output of size 1
    _ops.conv_transpose(X1, W1, cropping=[[5], [0]])                # one position left
    _ops.conv(X2, W2, np.zeros((1, 1, 6)))                           # bias of any shape
    _ops.conv(X2.astype(np.float32), W2, np.zeros(6, np.float32))   # mixed precision


# Out-of-range sizes run in a child process: a crash there must fail this test, not end
# the test session.
HUGE = [
    ("stride-huge-channelwise-1d",
     "_ops.conv(np.ones((5, 1, 1)), np.ones((1, 1, 1)), stride=2**61)",
     r"(?i)stride|too large"),
    ("stride-huge-channelwise-2d",
     "_ops.conv(np.ones((5, 5, 1, 1)), np.ones((1, 1, 1, 1)), stride=2**61)",
     r"(?i)stride|too large"),
    ("stride-2**40-channelwise",
     "_ops.conv(np.ones((5, 1, 1)), np.ones((2, 1, 1)), stride=2**40)",
     r"(?i)stride|too large"),
    ("stride-huge-tconv",
     "_ops.conv_transpose(np.ones((5, 1, 1)), np.ones((2, 1, 1)), stride=2**62)",
     r"(?i)stride|too large"),
    ("stride-float-huge", "_ops.conv(np.ones((5, 1, 1)), np.ones((2, 1, 1)), stride=1e300)",
     r"(?i)stride|too large"),
    ("padding-huge", "_ops.conv(np.ones((5, 1, 1)), np.ones((2, 1, 1)), padding=2**62)",
     r"(?i)padding|too large"),
    ("padding-2**31", "_ops.conv(np.ones((5, 4, 1)), np.ones((3, 4, 1)), padding=2**31)",
     r"(?i)padding|too large"),
    ("offset-huge",
     "_ops.conv_transpose(np.ones((5, 1, 1)), np.ones((2, 1, 1)), offset=2**62)",
     r"(?i)offset|too large"),
]

_CHILD = """
import sys
import numpy as np
from mlayers import _ops
try:
    {call}
except (ValueError, TypeError) as e:
    print(type(e).__name__ + ": " + str(e))
    sys.exit(0)
except BaseException as e:
    print("wrong exception " + type(e).__name__ + ": " + str(e))
    sys.exit(3)
print("no exception")
sys.exit(4)
"""


def _run_child(call):
    import subprocess
    import sys
    proc = subprocess.run([sys.executable, "-c", _CHILD.format(call=call)],
                          capture_output=True, text=True, timeout=120, check=False)
    return proc.returncode, (proc.stdout + proc.stderr).strip()


@pytest.mark.parametrize("name,call,pattern", HUGE, ids=[h[0] for h in HUGE])
def test_out_of_range_sizes_raise_without_crashing(name, call, pattern):
    rc, out = _run_child(call)
    how = f"killed by signal {-rc}" if rc < 0 else f"exit code {rc}"
    assert rc == 0, f"{how}: {out[-500:]}"
    assert re.search(pattern, out), out


def test_large_stride_is_valid():
    # a stride beyond the input gives one output position; it must not need memory
    # proportional to the stride
    rc, out = _run_child(
        "y = _ops.conv(np.ones((5, 1, 1)), np.ones((2, 1, 1)), stride=10**6)\n"
        "    assert y.ravel().tolist() == [2.0], y\n"
        "    y = _ops.conv(np.ones((5, 3, 1)), np.ones((2, 3, 1)), stride=10**6)\n"
        "    assert y.ravel().tolist() == [6.0], y")
    assert rc == 4, out   # "no exception"
