"""MATLAB's ``dlarray``: numpy data with dimension labels, in MATLAB's canonical order.

A formatted dlarray stores its data with the dimensions sorted into MATLAB's canonical
order ``S..., C, B, T, U...`` (a stable sort, so repeated ``S`` or ``U`` keep their order),
exactly as MATLAB's ``dlarray`` does (MATLAB_SEMANTICS §1.3)::

    dlarray(x, 'TS')    with x 3×4          dims 'ST', data x.T           (4×3)
    dlarray(x, 'BCSS')  with x (B,C,H,W)    dims 'SSCB', data x.transpose(2,3,1,0)

Memory layout contract: the stored ``data`` is always a *view* of the input when the input
is already float32/float64 in native byte order, whatever its memory order.  The canonical
permutation is a ``transpose`` (strides only), extra labels add singleton axes and dropped
trailing singletons are squeezed, none of which copies.  So a Fortran-ordered
``S x S x C x B`` array from ``scipy.io.loadmat`` stays one Fortran-ordered block, which the
kernels read as C-ordered ``B x C x S x S`` without a layout copy (see ``_ops``).

Unlike MATLAB, ``data.ndim == len(dims)`` always holds for formatted data: trailing
singletons are kept (``SSCB`` with B = 1 has four axes), so the layers can index every
labelled dimension.  :func:`size` gives MATLAB's ``size`` (trailing singletons dropped).
"""
import itertools

import numbers

import numpy as np

__all__ = ["dlarray", "dims", "extractdata", "finddim", "stripdims", "size", "as_formatted",
           "networkDataLayout"]

_LABELS = "SCBTU"
_RANK = {label: i for i, label in enumerate(_LABELS)}   # canonical order S, C, B, T, U
_ONCE = "CBT"                                             # labels allowed at most once


# --------------------------------------------------------------------------- helpers

def _size_text(shape):
    """MATLAB's ``3×4`` size text of a numpy shape (a 1-D shape is a column, n×1)."""
    return "×".join(str(s) for s in _matlab_size(shape))


def _matlab_size(shape):
    """MATLAB's ``size``: trailing singletons dropped, at least two entries."""
    shape = list(shape)
    while len(shape) > 2 and shape[-1] == 1:
        shape.pop()
    while len(shape) < 2:
        shape.append(1)
    return tuple(int(s) for s in shape)


def _describe(value):
    if isinstance(value, dlarray):
        if value.dims:
            return "a " + " × ".join(f"{s}({d})" for s, d in zip(value.shape, value.dims)) \
                + " dlarray"
        return f"an unformatted {_size_text(value.shape)} dlarray"
    if isinstance(value, np.ndarray):
        return f"a {_size_text(value.shape)} {value.dtype} array"
    if isinstance(value, (tuple, list)):
        # (a network's several outputs passed on whole: name them, do not print them)
        kinds = ", ".join(_describe(v) if isinstance(v, (dlarray, np.ndarray))
                          else type(v).__name__ for v in value[:4])
        return (f"a {type(value).__name__} of {len(value)} values ({kinds}"
                f"{', ...' if len(value) > 4 else ''})")
    text = repr(value)
    return text if len(text) <= 80 else f"a {type(value).__name__}"


def _parse_format(fmt, fname, argname):
    """Validate a data format string -> upper-case labels (may be '')."""
    if isinstance(fmt, np.ndarray) and fmt.dtype.kind == "U" and fmt.size == 1:
        fmt = str(fmt.item())
    if not isinstance(fmt, str):
        raise TypeError(f"{fname}: {argname} must be a string of the labels S, C, B, T "
                        f"and U, got {fmt!r}")
    labels = fmt.upper()
    if any(c not in _LABELS for c in labels):
        raise ValueError(f"{fname}: {argname} must contain only the labels S, C, B, T and U, "
                         f"got {fmt!r}")
    for label in _ONCE:
        if labels.count(label) > 1:
            raise ValueError(f"{fname}: {argname} must contain the label {label} at most "
                             f"once, got {fmt!r}")
    return labels


def _as_data(x, fname, argname):
    """numpy data of a dlarray: float32/float64 kept as a view, other reals converted.

    Integer and logical input becomes float64, as a MATLAB literal ``[1 2 3]`` is double.
    float16 becomes float32.  Complex, object, string and time data are rejected.
    """
    if isinstance(x, dlarray):
        return x._data
    try:
        a = np.asarray(x)
    except Exception:
        raise TypeError(f"{fname}: {argname} must be a real numeric or logical array, "
                        f"got {type(x).__name__}") from None
    kind = a.dtype.kind
    if a.dtype in (np.float32, np.float64):
        if not a.dtype.isnative:
            a = a.astype(a.dtype.newbyteorder("="))   # kernels need native byte order
        return a
    if kind in "biu":
        return a.astype(np.float64)
    if kind == "f":
        return a.astype(np.float32 if a.dtype.itemsize < 4 else np.float64)
    raise TypeError(f"{fname}: {argname} must be a real numeric or logical array, "
                    f"got dtype {a.dtype}")


_NATIVE_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))
# (format, ndim) -> (transpose or None, canonical dims) for formats that keep every dimension
_KNOWN_FORMATS = {}


def _canonical_perm(labels):
    return tuple(sorted(range(len(labels)), key=lambda i: (_RANK[labels[i]], i)))


def _apply_format(a, labels, fname, argname):
    """Data in the order ``labels`` -> (canonical view, canonical dims)."""
    n = len(labels)
    nd = a.ndim
    # MATLAB ignores trailing singletons when counting dimensions.
    eff = nd
    while eff > n and a.shape[eff - 1] == 1:
        eff -= 1
    if eff > n:
        raise ValueError(f"{fname}: {argname} must have at least as many labels as the data "
                         f"has dimensions ({eff} for {_size_text(a.shape)} data), got {labels!r}")
    # Views only: squeeze surplus trailing singletons, or append singleton axes.
    if nd > n:
        a = np.squeeze(a, axis=tuple(range(n, nd)))
    elif nd < n:
        a = a[(Ellipsis,) + (np.newaxis,) * (n - nd)]
    perm = _canonical_perm(labels)
    a = a.transpose(perm)
    out = "".join(labels[i] for i in perm)
    # Trailing singleton U dimensions after the second are dropped (MATLAB).
    k = n
    while k > 2 and out[k - 1] == "U" and a.shape[k - 1] == 1:
        k -= 1
    if k < n:
        a = np.squeeze(a, axis=tuple(range(k, n)))
        out = out[:k]
    return a, out


# --------------------------------------------------------------------------- dlarray

class dlarray:
    """Deep learning array with MATLAB's data format labels (``dlarray``).

    Parameters
    ----------
    x : array_like or dlarray
        Data in MATLAB dimension order (``x[i, j, k]`` is MATLAB's ``X(i+1, j+1, k+1)``), in
        either memory order.  float32/float64 arrays are stored as views (no copy, also
        for the Fortran-ordered arrays ``scipy.io.loadmat`` returns); integer and logical
        data are converted to float64, float16 to float32.  A dlarray without ``fmt``
        is returned as it is; a dlarray with ``fmt`` is relabelled (its stored data are
        given the new format, as if they were a plain array).
    fmt : str, optional
        Data format, one label per dimension: ``S`` spatial, ``C`` channel, ``B`` batch,
        ``T`` time, ``U`` unspecified (case-insensitive).  ``S`` and ``U`` may repeat;
        ``C``, ``B`` and ``T`` appear at most once.  There must be at least as many labels
        as dimensions (trailing singletons do not count); extra labels add trailing
        singleton dimensions.  ``''`` (default) gives an unformatted dlarray.

    Attributes
    ----------
    dims : str
        The format in canonical order ``S..., C, B, T, U...`` (``''`` when unformatted).
    data : numpy.ndarray
        The stored data, in the order of ``dims`` (a view, never a copy).
    shape, dtype, ndim
        Those of ``data``; for formatted data ``ndim == len(dims)``.

    Raises
    ------
    TypeError
        ``fmt`` is not a string, or the data are not real numbers.
    ValueError
        Unknown labels, a repeated ``C``/``B``/``T``, or fewer labels than dimensions.

    Examples
    --------
    MATLAB::

        X = dlarray(randn(3,4),'TS');
        dims(X)                 % 'ST'
        size(X)                 % [4 3]

    Python::

        >>> import numpy as np
        >>> import mlayers as ml
        >>> x = np.arange(12.0).reshape(3, 4)
        >>> X = ml.dlarray(x, "TS")
        >>> X.dims, X.shape
        ('ST', (4, 3))
        >>> X = ml.dlarray(np.zeros((8, 3, 32, 32)), "BCSS")
        >>> X
          32(S) × 32(S) × 3(C) × 8(B) dlarray
        <BLANKLINE>
        ...
    """

    __slots__ = ("_data", "_dims", "_node")
    # _node: (tape, id) while traced by dlfeval (mlayers._autodiff), else None

    def __init__(self, x, fmt=""):
        # the common case, a float array with one label per dimension, skips the checks
        # once its format has been seen
        if type(x) is np.ndarray and type(fmt) is str and x.dtype in _NATIVE_FLOATS:
            known = _KNOWN_FORMATS.get((fmt, x.ndim))
            if known is not None:
                perm, self._dims = known
                self._data = x if perm is None else x.transpose(perm)
                self._node = None
                return
        labels = _parse_format(fmt, "dlarray", "fmt")
        self._node = None
        if isinstance(x, dlarray) and not labels:
            self._data, self._dims, self._node = x._data, x._dims, x._node
            return
        if isinstance(x, dlarray) and x._node is not None:
            # relabelling a traced array is itself traced
            y = _mathfun().relabel(x, fmt)
            self._data, self._dims, self._node = y._data, y._dims, y._node
            return
        data = _as_data(x, "dlarray", "X")
        if labels:
            data, labels = _apply_format(data, labels, "dlarray", "fmt")
            # (not cached with U labels: whether a trailing singleton U is dropped
            # depends on the sizes, not only on the format)
            if type(x) is np.ndarray and type(fmt) is str and x.ndim == len(fmt) == len(labels) \
                    and "U" not in labels:
                perm = _canonical_perm(fmt.upper())
                _KNOWN_FORMATS[(fmt, x.ndim)] = (
                    None if perm == tuple(range(x.ndim)) else perm, labels)
        self._data = data
        self._dims = labels

    @classmethod
    def _from_canonical(cls, data, dims):
        """Formatted dlarray from data already in canonical order; no checks, no copy.

        For layer outputs: ``data`` must be a float32/float64 ndarray with
        ``data.ndim == len(dims)`` and ``dims`` in canonical order.
        """
        obj = cls.__new__(cls)
        obj._data = data
        obj._dims = dims
        obj._node = None
        return obj

    def _with_data(self, data, dims=None):
        """A dlarray holding ``data`` with ``dims`` (default: this array's); no checks."""
        return dlarray._from_canonical(data, self._dims if dims is None else dims)

    # ----------------------------------------------------------------- attributes

    @property
    def dims(self):
        """Data format in canonical order, MATLAB's ``dims(X)`` (``''`` if unformatted)."""
        return self._dims

    @property
    def data(self):
        """The stored numpy array (a view, canonical order); same as ``extractdata(X)``."""
        return self._data

    @property
    def shape(self):
        return self._data.shape

    @property
    def dtype(self):
        return self._data.dtype

    @property
    def ndim(self):
        return self._data.ndim

    def __len__(self):
        return len(self._data)

    @property
    def T(self):
        """MATLAB's ``X'`` of a matrix (traced; formatted data gives unformatted, as
        ``permute`` does)."""
        if self._data.ndim > 2:
            raise ValueError(f"transpose: X must be a matrix (MATLAB's transpose is 2-D), "
                             f"got size {'x'.join(map(str, self._data.shape))}; use "
                             f"ml.permute")
        return _mathfun().permute(self, [2, 1])

    def __iter__(self):
        # (without this, Python would iterate through __getitem__ and unpacking
        # "Y, mu, v = ml.batchnorm(...)" without nargout=3 would quietly slice Y)
        raise TypeError("dlarray is not iterable: to take several outputs of a function, "
                        "pass nargout= (Y, mu, v = ml.batchnorm(..., nargout=3)); to loop "
                        "over a dimension, index it (X[:, k])")

    def __array__(self, dtype=None, copy=None):
        a = self._data
        if dtype is not None and np.dtype(dtype) != a.dtype:
            if copy is False:
                raise ValueError("dlarray: converting to a different dtype needs a copy")
            return a.astype(dtype)
        return a.copy() if copy else a

    # ----------------------------------------------------------------- arithmetic
    # MATLAB .* ./ .^ are * / **; MATLAB * is @.  All traced (mlayers.functional.arith).

    def __add__(self, other):
        return _arith().plus(self, other)

    def __radd__(self, other):
        return _arith().plus(other, self)

    def __sub__(self, other):
        return _arith().minus(self, other)

    def __rsub__(self, other):
        return _arith().minus(other, self)

    def __mul__(self, other):
        return _arith().times(self, other)

    def __rmul__(self, other):
        return _arith().times(other, self)

    def __truediv__(self, other):
        return _arith().rdivide(self, other)

    def __rtruediv__(self, other):
        return _arith().rdivide(other, self)

    def __pow__(self, other):
        return _arith().power(self, other)

    def __rpow__(self, other):
        return _arith().power(other, self)

    def __neg__(self):
        return _arith().uminus(self)

    def __float__(self):
        """``float(X)`` of a one-element dlarray (MATLAB's ``double(extractdata(X))`` of a
        scalar loss or score, whatever its format's singleton dimensions)."""
        return float(self._scalar("float"))

    def __int__(self):
        return int(self._scalar("int"))

    def item(self):
        """The value of a one-element dlarray as a Python number."""
        return self._scalar("item").item()

    def _scalar(self, fname):
        if self._data.size != 1:
            raise TypeError(f"{fname}: only a one-element dlarray converts to a Python "
                            f"scalar, got size {'×'.join(map(str, self._data.shape))}")
        return self._data.reshape(())[()]

    def __abs__(self):
        return _mathfun().abs(self)

    def __getitem__(self, index):
        """Python indexing of the stored data (0-based), traced.  On formatted data an
        integer index keeps its dimension (MATLAB's ``X(1,:,:,:)``), so the format stays;
        any other change in the number of dimensions gives unformatted data."""
        return _mathfun().subsref(self, index)

    def __setitem__(self, index, value):
        """``X[index] = value`` (MATLAB's indexed assignment), traced: the array is
        replaced by an updated copy, so values computed from the old one are unchanged."""
        y = _mathfun().subsasgn(self, index, value)
        self._data, self._node = y._data, y._node

    # comparisons give plain logical numpy arrays (no gradient flows through them)
    def __lt__(self, other):
        return self._data < _plain(other)

    def __le__(self, other):
        return self._data <= _plain(other)

    def __gt__(self, other):
        return self._data > _plain(other)

    def __ge__(self, other):
        return self._data >= _plain(other)

    def __eq__(self, other):
        return self._data == _plain(other)

    def __ne__(self, other):
        return self._data != _plain(other)

    __hash__ = object.__hash__

    def __pos__(self):
        return self

    def __matmul__(self, other):
        return _arith().mtimes(self, other)

    def __rmatmul__(self, other):
        return _arith().mtimes(other, self)

    __array_priority__ = 1000   # numpy defers to these operators (np_array + X -> X.__radd__)

    def __reduce__(self):
        return (dlarray._from_canonical, (self._data, self._dims))

    # ----------------------------------------------------------------- display

    def _header(self):
        a = self._data
        cls = "" if a.dtype == np.float64 else ("single " if a.dtype == np.float32
                                                  else f"{a.dtype} ")
        empty = "empty " if a.size == 0 else ""
        if self._dims:
            sizes = " × ".join(f"{s}({d})" for s, d in zip(a.shape, self._dims))
        else:
            sizes = _size_text(a.shape)
        return f"  {sizes} {empty}{cls}dlarray"

    def __repr__(self):
        lines = [self._header()]
        a = self._data
        if a.size == 0:
            return lines[0] + "\n"
        # MATLAB's size: trailing singletons dropped (a 2x2x1x1 'SSCB' array is a matrix,
        # its pages (:,:,k) over the dimensions that remain)
        a = a.reshape(_matlab_size(a.shape), order="A")
        if a.ndim == 2:
            lines += ["", _page_text(a), ""]
        else:
            # MATLAB's page display: (:,:,k,l) pages, first page index fastest.
            pages = list(itertools.product(*(range(s) for s in a.shape[:1:-1])))
            shown = 0
            budget = int(np.get_printoptions()["threshold"])
            for count, idx in enumerate(pages):
                idx = idx[::-1]
                if shown and shown + a.shape[0] * a.shape[1] > budget:
                    lines += ["", f"  ... {len(pages) - count} more pages "
                              "(extractdata(X) for all the data)", ""]
                    break
                label = ",".join(str(i + 1) for i in idx)
                lines += ["", f"(:,:,{label}) =", "", _page_text(a[(...,) + idx]), ""]
                shown += a.shape[0] * a.shape[1]
        return "\n".join(lines)

    __str__ = __repr__


def _page_text(p):
    """A matrix as MATLAB's ``format short`` shows it, near enough: right-aligned columns
    four spaces apart; whole numbers as integers, others with four decimals, scientific
    notation for magnitudes outside [1e-3, 1e5); NaN, Inf and -Inf by name."""
    if p.size > int(np.get_printoptions()["threshold"]):
        # (a page too large to print whole: NumPy's summary, its corners, unbracketed)
        with np.printoptions(precision=4, suppress=True, edgeitems=3):
            text = np.array2string(p, separator="    ")
        return "\n".join("    " + line.replace("[", "").replace("]", "").strip()
                         for line in text.splitlines())
    finite = p[np.isfinite(p)]
    big = float(np.abs(finite).max()) if finite.size else 0.0
    if np.all(finite == np.round(finite)) and big < 1e9:
        fmt = "{:.0f}"
    elif finite.size and (big >= 1e5 or big < 1e-3):
        fmt = "{:.4e}"
    else:
        fmt = "{:.4f}"
    cells = [["NaN" if v != v else ("Inf" if v > 0 else "-Inf") if not np.isfinite(v)
              else fmt.format(v) for v in row] for row in p.tolist()]
    width = max(len(c) for row in cells for c in row)
    return "\n".join("".join(c.rjust(width + 4) for c in row) for row in cells)


def _arith():
    from .functional import arith
    return arith


def _mathfun():
    from .functional import mathfun
    return mathfun


def _plain(x):
    return x._data if isinstance(x, dlarray) else x


# --------------------------------------------------------------------------- functions

def _require_dlarray(X, fname):
    if not isinstance(X, dlarray):
        raise TypeError(f"{fname}: X must be a dlarray, got {type(X).__name__}")


def dims(X):
    """Data format of a dlarray, MATLAB's ``dims``.

    Returns ``''`` for an unformatted dlarray (MATLAB: ``0×0 empty char array``).

    Examples
    --------
    MATLAB::

        dims(dlarray(randn(3,4),'TS'))          % 'ST'

    Python::

        >>> import numpy as np, mlayers as ml
        >>> ml.dims(ml.dlarray(np.zeros((3, 4)), "TS"))
        'ST'
    """
    _require_dlarray(X, "dims")
    return X._dims


def extractdata(X):
    """The data of a dlarray, MATLAB's ``extractdata``: a numpy view, no copy.

    The data are in the order of ``dims(X)`` (any implicit permutation made explicit, as
    MATLAB documents).  Trailing singletons are kept: ``ndim == len(dims(X))``.

    Examples
    --------
    MATLAB::

        y = extractdata(dlarray(x,'TS'));       % x.'

    Python::

        >>> import numpy as np, mlayers as ml
        >>> x = np.arange(6.0).reshape(3, 2)
        >>> bool((ml.extractdata(ml.dlarray(x, "TS")) == x.T).all())
        True
    """
    _require_dlarray(X, "extractdata")
    return X._data


def finddim(X, label):
    """1-based indices of the dimensions of ``X`` labelled ``label``, MATLAB's ``finddim``.

    Returns a list (empty for an unformatted dlarray or an absent label).

    Examples
    --------
    MATLAB::

        X = dlarray(randn(6,5,4,3,2),"SSCBT");
        finddim(X,"S")                          % [1 2]

    Python::

        >>> import numpy as np, mlayers as ml
        >>> ml.finddim(ml.dlarray(np.zeros((6, 5, 4, 3, 2)), "SSCBT"), "S")
        [1, 2]
    """
    if not isinstance(X, networkDataLayout):
        _require_dlarray(X, "finddim")
    if not isinstance(label, str):
        raise TypeError(f"finddim: label must be one of 'S', 'C', 'B', 'T', 'U', got {label!r}")
    key = label.upper()
    if len(key) != 1 or key not in _LABELS:
        raise ValueError(f"finddim: label must be one of 'S', 'C', 'B', 'T', 'U', got {label!r}")
    return [i + 1 for i, d in enumerate(X._dims) if d == key]


def stripdims(X, fmt=""):
    """Remove the format of a dlarray, MATLAB's ``stripdims``.

    ``stripdims(X)`` returns an unformatted dlarray with the same data (no copy).
    ``stripdims(X, fmt)`` also permutes the data into the order of ``fmt``, which must
    hold every label of ``dims(X)`` (as many ``S``/``U`` as ``X`` has, or more; extra labels
    become singleton dimensions).  Repeated labels keep their order.  If ``fmt`` is empty
    or ``X`` is unformatted the data are returned unchanged, as in MATLAB.

    Examples
    --------
    MATLAB::

        X = dlarray(randn(5,4,3,2),'SSCB');
        Y = stripdims(X,'BCSS');                % 2×3×5×4, unformatted

    Python::

        >>> import numpy as np, mlayers as ml
        >>> X = ml.dlarray(np.zeros((5, 4, 3, 2)), "SSCB")
        >>> Y = ml.stripdims(X, "BCSS")
        >>> Y.dims, Y.shape
        ('', (2, 3, 5, 4))
    """
    _require_dlarray(X, "stripdims")
    labels = _parse_format(fmt, "stripdims", "fmt")
    if X._node is not None:
        return _mathfun().stripdims_op(X, fmt)
    data = X._data
    if not labels or not X._dims:
        return dlarray._from_canonical(data, "")
    have = X._dims
    missing = [d for d in _LABELS if have.count(d) > labels.count(d)]
    if missing:
        raise ValueError(f"stripdims: fmt must contain every label of dims(X) ({have!r}), "
                         f"got {fmt!r}")
    used = {d: [i for i, h in enumerate(have) if h == d] for d in _LABELS}
    index = []
    for d in labels:
        index.append(used[d].pop(0) if used[d] else None)
    # Append the singleton axes, then transpose the axes into the order of fmt.
    n_new = sum(i is None for i in index)
    data = data[(Ellipsis,) + (np.newaxis,) * n_new]
    nxt = iter(range(len(have), len(have) + n_new))
    perm = [next(nxt) if i is None else i for i in index]
    return dlarray._from_canonical(data.transpose(perm), "")


def size(X, dim=None):
    """MATLAB's ``size`` of a dlarray or array: trailing singletons dropped, >= 2 entries.

    ``size(X, dim)`` (1-based) returns one size; dimensions beyond the data are 1.

    Examples
    --------
    MATLAB::

        size(dlarray(zeros(3,3,16,1),'SSCB'))   % [3 3 16]

    Python::

        >>> import numpy as np, mlayers as ml
        >>> ml.size(ml.dlarray(np.zeros((3, 3, 16, 1)), "SSCB"))
        (3, 3, 16)
    """
    shape = X._data.shape if isinstance(X, dlarray) else np.shape(X)
    sz = _matlab_size(shape)
    if dim is None:
        return sz
    if isinstance(dim, (bool, np.bool_)) or not isinstance(dim, (int, np.integer)) or dim < 1:
        raise ValueError(f"size: dim must be a positive integer, got {dim!r}")
    return sz[dim - 1] if dim <= len(sz) else 1


class networkDataLayout:
    """MATLAB's ``networkDataLayout(sz, fmt)``: the size and format of a network's data
    without the data (what a custom layer's ``initialize`` receives; NaN for a size not
    known, the batch's).  ``finddim(layout, "C")`` works on it as on a dlarray.

    Examples
    --------
    MATLAB::

        layout = networkDataLayout([28 28 1 NaN], "SSCB");
        numChannels = layout.Size(finddim(layout, "C"));

    Python::

        >>> import numpy as np, mlayers as ml
        >>> layout = ml.networkDataLayout([28, 28, 1, np.nan], "SSCB")
        >>> layout.Size[ml.finddim(layout, "C")[0] - 1]
        1
    """

    def __init__(self, sz, fmt=""):
        fname = "networkDataLayout"
        values = np.asarray(sz, dtype=object).ravel()
        size = []
        for v in values:
            ok = isinstance(v, (numbers.Real, np.number)) and not isinstance(v, (bool, np.bool_))
            if ok and v == v:
                ok = 0 <= v < float("inf") and v == int(v)
            if not ok:
                raise ValueError(f"{fname}: sz must be a row vector of two or more "
                                 f"nonnegative integers or NaN values, got {sz!r}")
            size.append(int(v) if v == v else float("nan"))
        if len(size) < 2:
            raise ValueError(f"{fname}: sz must be a row vector of two or more nonnegative "
                             f"integers or NaN values, got {len(size)} value(s)")
        labels = _parse_format(fmt, fname, "fmt") if fmt else ""
        if labels and len(labels) != len(size):
            raise ValueError(f"{fname}: fmt must label every dimension of sz "
                             f"({len(size)}), got '{fmt}'")
        self.Size, self.Format, self._dims = size, labels, labels

    def __repr__(self):
        sizes = " ".join("NaN" if s != s else str(s) for s in self.Size)
        return (f"  networkDataLayout with properties:\n\n      Size: [{sizes}]\n"
                f"    Format: '{self.Format}'\n")


def as_formatted(X, data_format=None, fname="predict"):
    """A formatted dlarray from layer input, applying MATLAB's ``DataFormat`` option.

    Parameters
    ----------
    X : dlarray or array_like
        A formatted dlarray (returned as it is), or an unformatted dlarray or numpy array
        whose dimensions ``data_format`` labels.
    data_format : str, optional
        MATLAB's ``DataFormat`` name-value argument; only for unformatted input.
    fname : str
        Function named in error messages (``predict``, ``dlconv``, a layer name...).

    Returns
    -------
    dlarray
        Formatted, in canonical order (a view of the input data when it is float).

    Raises
    ------
    ValueError
        Unformatted input without ``DataFormat``, formatted input with one, or a bad
        ``DataFormat``.
    TypeError
        Non-numeric data or a non-string ``DataFormat``.

    Notes
    -----
    MATLAB returns unformatted output for unformatted input; a caller restores that with
    ``stripdims(Y, data_format)`` when ``Y`` has the same labels as the input.
    """
    if isinstance(X, dlarray) and X._dims:
        if data_format is not None and data_format != "":
            raise ValueError(f"{fname}: DataFormat must not be given for a formatted "
                             f"dlarray (dims {X._dims!r}), got {data_format!r}")
        return X
    if data_format is None or (isinstance(data_format, str) and data_format == ""):
        raise ValueError(f"{fname}: X must be a formatted dlarray, or DataFormat must be "
                         f"given, got {_describe(X)}")
    labels = _parse_format(data_format, fname, "DataFormat")
    data = _as_data(X, fname, "X")
    data, labels = _apply_format(data, labels, fname, "DataFormat")
    return dlarray._from_canonical(data, labels)
