"""MATLAB's ``onehotencode`` and ``onehotdecode`` (MATLAB_SEMANTICS §11.4).

Labels are ``ml.categorical`` arrays (``mlayers.training.categorical``), any object with
``.codes`` (0-based, negative for missing) and ``.categories`` (e.g. a pandas
Categorical), or plain arrays of labels (strings or numbers) with ``ClassNames``.
Dimensions are MATLAB's and 1-based; a 1-D numpy array is a column (``N×1``).
"""

__all__ = ["onehotencode", "onehotdecode"]
import numpy as np

from .. import _validate as V
from .._display import format_size
from .._options import parse_name_value
from ..dlarray import dlarray

_NUMERIC = {"double": np.float64, "single": np.float32, "int8": np.int8, "int16": np.int16,
            "int32": np.int32, "int64": np.int64, "uint8": np.uint8, "uint16": np.uint16,
            "uint32": np.uint32, "uint64": np.uint64, "logical": np.bool_}


def _names(values):
    from ..training.categorical import _name
    return [_name(v.item() if isinstance(v, np.generic) else v) for v in values]


def _labels(A, class_names, fname):
    """(names of each element, None for missing; the shape of A)."""
    from ..training.categorical import categorical, categories
    if isinstance(A, categorical):
        cats = categories(A)
        codes = np.asarray(A.codes)
    elif hasattr(A, "codes") and hasattr(A, "categories"):
        cats = _names(list(A.categories))
        codes = np.asarray(A.codes)
    else:
        if class_names is None:
            raise ValueError(f"{fname}: ClassNames must be given when A is not categorical, "
                             f"got {type(A).__name__}")
        arr = np.asarray(A, dtype=object)
        names = np.array(_names(arr.reshape(-1)) if arr.size else [], dtype=object)
        return names.reshape(arr.shape), arr.shape
    names = np.array([cats[c] if c >= 0 else None for c in codes.reshape(-1)], dtype=object)
    return names.reshape(codes.shape), codes.shape




def onehotencode(A, featureDim, *args, **kwargs):
    """One-hot encode labels, MATLAB's ``onehotencode``.

    ``B = onehotencode(A, featureDim)`` replaces the singleton dimension ``featureDim``
    (1-based) of ``A`` by one element per class; ``<undefined>`` labels and labels outside
    ``ClassNames`` give NaN vectors.  ``typename`` (positional, default ``"double"``):
    ``"single"``, ``"double"``, integer types or ``"logical"`` (NaN becomes 0 there).

    Examples
    --------
    MATLAB::

        A = categorical(["red" "blue" "red"]);       % 1×3
        B = onehotencode(A, 1);                      % 2×3: blue; red

    Python::

        >>> A = ml.categorical(np.array([["red", "blue", "red"]]))
        >>> ml.onehotencode(A, 1).tolist()
        [[0.0, 1.0, 0.0], [1.0, 0.0, 1.0]]
    """
    fname = "onehotencode"
    typename = "double"
    if args and isinstance(args[0], (str, np.str_)) and str(args[0]).lower() in _NUMERIC:
        typename, args = str(args[0]).lower(), args[1:]
    opts = parse_name_value(fname, args, kwargs, ("ClassNames",))
    cn = opts.get("ClassNames")
    dim = V.positive_int(featureDim, V.Where(fname, "featureDim"))
    if dim > V.MAX_DIMS:      # the result has featureDim dimensions: numpy cannot hold more
        raise ValueError(f"{fname}: featureDim must be at most {V.MAX_DIMS} (the most "
                         f"dimensions an array can have), got {dim}")
    names, shape = _labels(A, cn, fname)
    if cn is not None:
        classes = _names(np.asarray(cn, dtype=object).reshape(-1))
    else:
        from ..training.categorical import categorical, categories
        classes = categories(A) if isinstance(A, categorical) else _names(list(A.categories))
    shape = tuple(shape) if len(shape) >= 2 else (tuple(shape) + (1,) * (2 - len(shape)))
    shape = shape + (1,) * max(0, dim - len(shape))
    names = names.reshape(shape)
    if shape[dim - 1] != 1:
        raise ValueError(f"{fname}: dimension featureDim ({dim}) of A must be singleton, got "
                         f"size {format_size(shape)}")
    index = {c: i for i, c in enumerate(classes)}
    k = len(classes)
    out_shape = shape[:dim - 1] + (k,) + shape[dim:]
    V.check_allocation(fname, "the one-hot array", out_shape, 8)
    out = np.zeros(out_shape, dtype=np.float64)
    flat = names.reshape(-1, order="F")
    pos = np.moveaxis(out, dim - 1, -1)              # view: (..., K) per element
    for j, nm in enumerate(flat):
        idx = np.unravel_index(j, shape, order="F")
        sel = idx[:dim - 1] + idx[dim:]
        i = index.get(nm) if nm is not None else None
        if i is None:
            pos[sel] = np.nan
        else:
            pos[sel + (i,)] = 1.0
    dtype = _NUMERIC[typename]
    if dtype not in (np.float64, np.float32):
        out = np.nan_to_num(out, nan=0.0)
    return out.astype(dtype)


def onehotdecode(B, classes, featureDim, *args):
    """Decode probability vectors into labels, MATLAB's ``onehotdecode``.

    The class of the largest value along ``featureDim`` (1-based; ties take the first),
    mapped to ``classes``; that dimension becomes singleton.  ``typename`` (optional):
    ``"categorical"`` (default; categories in ``classes`` order), ``"string"`` (an array of
    names) or a numeric type (the classes' values, which must then be numeric).

    Examples
    --------
    MATLAB::

        labels = onehotdecode(B, ["blue" "red"], 1);

    Python::

        >>> B = np.array([[0.1, 0.8], [0.9, 0.2]])
        >>> list(np.asarray(ml.onehotdecode(B, ["blue", "red"], 1)).ravel())
        ['red', 'blue']
    """
    fname = "onehotdecode"
    typename = "categorical"
    if args:
        if len(args) > 1 or not isinstance(args[0], (str, np.str_)):
            raise TypeError(f"{fname}: the optional argument must be typename, got "
                            f"{args!r}")
        typename = str(args[0]).lower()
    b = B._data if isinstance(B, dlarray) else np.asarray(B)
    if b.dtype.kind not in "fiub":
        raise TypeError(f"{fname}: B must be numeric, got dtype {b.dtype}")
    dim = V.positive_int(featureDim, V.Where(fname, "featureDim"))
    cls = list(np.asarray(classes, dtype=object).reshape(-1))
    n = b.shape[dim - 1] if dim <= b.ndim else 1    # dimensions past the data: singletons
    if n != len(cls):
        raise ValueError(f"{fname}: classes must have one element per entry of dimension "
                         f"featureDim ({n}), got {len(cls)}")
    if dim > b.ndim:
        # every element is its own (single-class) vector: class 1 everywhere.  The
        # trailing singleton dimensions up to featureDim are kept while an array can hold
        # them (MATLAB's trailing singletons are implicit; a featureDim of 2^31 must not
        # build a 2^31-element shape)
        V.check_allocation(fname, "the labels", b.shape, 8)
        pad = dim - b.ndim if dim <= V.MAX_DIMS else 0
        idx = np.zeros(b.shape + (1,) * pad, dtype=np.intp)
    else:
        idx = np.expand_dims(np.argmax(b, axis=dim - 1), dim - 1)   # first maximum on ties
    if typename == "categorical":
        from ..training.categorical import categorical, _is_missing
        if any(_is_missing(c) for c in cls):
            raise ValueError(f"{fname}: classes must not contain missing values (NaN, '' or "
                             f"<undefined>), which cannot be categories, got "
                             f"{[c for c in cls]!r:.80}")
        vals = np.asarray(cls, dtype=object)[idx]
        return categorical(vals, valueset=cls)
    if typename == "string":
        return np.asarray(_names(cls), dtype=object)[idx]
    if typename in _NUMERIC:
        return np.asarray(cls, dtype=np.float64)[idx].astype(_NUMERIC[typename])
    raise ValueError(f"{fname}: typename must be 'categorical', 'string' or a numeric "
                     f"type, got {typename!r}")
