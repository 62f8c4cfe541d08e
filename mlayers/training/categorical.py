"""MATLAB's ``categorical`` for class labels, and ``categories``.

``ml.categorical(values)`` keeps one integer code per element and the category names:

* categories are the sorted unique values (MATLAB_SEMANTICS §16.8): text sorts by
  character code (``"B" < "a"``), numbers numerically (their names are MATLAB's
  ``num2str`` text: ``3`` -> ``"3"``, ``0.5`` -> ``"0.5"``);
* missing values (``""``, ``None``, NaN, ``"<undefined>"``) are ``<undefined>`` (code -1);
* ``c == other`` compares elementwise with a categorical (by name) or with plain labels
  (strings, or numbers by their name) and gives a boolean array; ``<undefined>`` equals
  nothing;
* indexing, ``len``, ``shape``, iteration (names), ``np.asarray(c)`` (names, ``<undefined>``
  for missing) and ``c.codes`` (0-based codes, -1 missing).

``categorical(values, valueset)`` and ``categorical(values, valueset, catnames)`` fix the
categories and their order as in MATLAB.
"""
import math
import numbers

import numpy as np

from .. import _display

__all__ = ["categorical", "categories", "countcats", "iscategorical"]

_UNDEFINED = "<undefined>"


def _is_missing(v):
    if v is None:
        return True
    if isinstance(v, str):
        return v == "" or v == _UNDEFINED
    if isinstance(v, numbers.Real) and not isinstance(v, bool):
        return math.isnan(float(v))
    return False


def _num_name(v):
    """MATLAB's num2str for a real scalar (integers without a point, else up to 4 decimals
    of %.4g-like precision as num2str does: ``max(log10(|v|)) + 5`` significant digits)."""
    if isinstance(v, (bool, np.bool_)):
        return "1" if v else "0"
    f = float(v)
    if not math.isfinite(f):
        return "NaN" if f != f else ("Inf" if f > 0 else "-Inf")
    if f == int(f) and abs(f) < 1e15:
        return str(int(f))
    digits = max(int(math.floor(math.log10(abs(f)))) + 5, 5) if f != 0 else 5
    return f"{f:.{digits}g}"


def _name(v):
    if isinstance(v, str):
        return v
    if isinstance(v, (numbers.Real, np.bool_)):
        return _num_name(v)
    return str(v)


def _matlab_size(shape):
    """MATLAB's size of a shape: a vector is a column, trailing singletons dropped."""
    shape = tuple(shape) if len(shape) >= 2 else (tuple(shape) + (1, 1))[:2]
    while len(shape) > 2 and shape[-1] == 1:
        shape = shape[:-1]
    return shape


class categorical:  # noqa: N801  (MATLAB's class name)
    """Categorical array (MATLAB's ``categorical``), used for class labels.

    Parameters
    ----------
    values : sequence or array of str or numbers, or a categorical
    valueset : sequence, optional
        The categories (in this order); values outside it are ``<undefined>``.
    catnames : sequence of str, optional
        Names for the categories of ``valueset``.
    Ordinal : bool, default False
        Accepted; ordinal comparisons are not supported.

    Examples
    --------
    MATLAB::

        Y = categorical(["dog"; "cat"; "dog"]);
        categories(Y)            % {'cat'; 'dog'}
        Y == "dog"               % [1; 0; 1]

    Python::

        >>> Y = ml.categorical(["dog", "cat", "dog"])
        >>> ml.categories(Y)
        ['cat', 'dog']
        >>> (Y == "dog").tolist()
        [True, False, True]
    """

    __array_priority__ = 1000      # numpy defers == to us

    def __init__(self, values, valueset=None, catnames=None, Ordinal=False):
        fname = "categorical"
        if isinstance(values, categorical) and valueset is None:
            self.codes = values.codes.copy()
            self._cats = list(values._cats)
            self.Ordinal = values.Ordinal
            return
        if isinstance(values, categorical):
            values = np.asarray(values, dtype=object)
        arr = np.asarray(values, dtype=object) if not isinstance(values, np.ndarray) \
            else values
        shape = arr.shape
        flat = list(arr.reshape(-1)) if arr.ndim else [arr.reshape(()).item()]
        flat = [v.item() if isinstance(v, np.generic) else v for v in flat]
        for v in flat:
            if not (v is None or isinstance(v, (str, numbers.Real, np.bool_))):
                raise TypeError(f"{fname}: values must be text or numbers, got "
                                f"{type(v).__name__}")
        if valueset is None:
            present = [v for v in flat if not _is_missing(v)]
            kinds = {isinstance(v, str) for v in present}
            if len(kinds) > 1:
                raise TypeError(f"{fname}: values must be all text or all numbers, got a "
                                f"mixture")
            uniq = sorted(set(present))           # code-point order for text, numeric order
            vals = uniq
            names = [_name(v) for v in uniq]
        else:
            vals = [v.item() if isinstance(v, np.generic) else v
                    for v in np.asarray(valueset, dtype=object).reshape(-1)]
            if len(set(map(_name, vals))) != len(vals):
                raise ValueError(f"{fname}: valueset must contain unique values")
            names = [_name(v) for v in vals] if catnames is None else \
                [str(c) for c in np.asarray(catnames, dtype=object).reshape(-1)]
            if len(names) != len(vals):
                raise ValueError(f"{fname}: catnames must have one name per value in "
                                 f"valueset ({len(vals)}), got {len(names)}")
            if len(set(names)) != len(names):
                raise ValueError(f"{fname}: catnames must be unique")
        lookup = {}
        for i, v in enumerate(vals):
            lookup[_key(v)] = i
        codes = np.array([-1 if _is_missing(v) else lookup.get(_key(v), -1) for v in flat],
                         dtype=np.int64)
        self.codes = codes.reshape(shape)
        self._cats = names
        self.Ordinal = bool(Ordinal)

    @classmethod
    def _from_codes(cls, codes, cats):
        obj = cls.__new__(cls)
        obj.codes = np.asarray(codes, dtype=np.int64)
        obj._cats = list(cats)
        obj.Ordinal = False
        return obj

    # ------------------------------------------------------------- array protocol

    @property
    def shape(self):
        return self.codes.shape

    @property
    def size(self):
        return self.codes.size

    @property
    def ndim(self):
        return self.codes.ndim

    def __len__(self):
        return len(self.codes)

    def __getitem__(self, idx):
        c = self.codes[idx]
        if np.ndim(c) == 0:
            k = int(c)
            return _UNDEFINED if k < 0 else self._cats[k]
        return categorical._from_codes(c, self._cats)

    def __setitem__(self, idx, value):
        other = self._codes_of(value)
        self.codes[idx] = other

    def __iter__(self):
        for k in self.codes.reshape(-1):
            yield _UNDEFINED if k < 0 else self._cats[k]

    def __array__(self, dtype=None, copy=None):
        names = np.array(self._cats + [_UNDEFINED], dtype=object)
        out = names[self.codes] if self.codes.size else np.empty(self.codes.shape, object)
        return out if dtype is None else out.astype(dtype)

    def reshape(self, *shape):
        return categorical._from_codes(self.codes.reshape(*shape), self._cats)

    def ravel(self):
        return self.reshape(-1)

    @property
    def T(self):
        """MATLAB's ``c'``: the transpose (of MATLAB's size: a 1-D array is a column)."""
        codes = self.codes.reshape(-1, 1) if self.codes.ndim < 2 else self.codes
        return categorical._from_codes(codes.T, self._cats)

    def tolist(self):
        return np.asarray(self).tolist()

    def isundefined(self):
        """MATLAB's ``isundefined``: True where the value is ``<undefined>``."""
        return self.codes < 0

    def double(self):
        """MATLAB's ``double(c)``: 1-based category numbers, NaN for ``<undefined>``."""
        out = self.codes.astype(np.float64) + 1
        out[self.codes < 0] = np.nan
        return out

    # ------------------------------------------------------------- comparison

    def _codes_of(self, other):
        """Codes (in this array's categories) of ``other``; -2 for names not among them
        (equal to nothing)."""
        index = {n: i for i, n in enumerate(self._cats)}
        if isinstance(other, categorical):
            remap = np.array([index.get(n, -2) for n in other._cats] + [-3], dtype=np.int64)
            return remap[other.codes]
        arr = np.asarray(other, dtype=object)
        flat = [v.item() if isinstance(v, np.generic) else v for v in arr.reshape(-1)]
        codes = [-3 if _is_missing(v) else index.get(_name(v), -2) for v in flat]
        return np.array(codes, dtype=np.int64).reshape(arr.shape)

    def __eq__(self, other):
        oc = self._codes_of(other)
        codes = self.codes
        if oc.shape != codes.shape and oc.size == codes.size and oc.size > 1 and \
                _matlab_size(oc.shape) == _matlab_size(codes.shape):
            # (MATLAB's sizes agree, an N-vector and an N x 1 column: elementwise, as in
            # MATLAB, not numpy's N x N broadcast)
            oc = oc.reshape(codes.shape)
        return (codes == oc) & (codes >= 0)

    def __ne__(self, other):
        return ~self.__eq__(other)

    __hash__ = None

    # ------------------------------------------------------------- display

    def __repr__(self):
        x = _display.times()
        shape = self.codes.shape if self.codes.ndim == 2 else (
            (self.codes.size, 1) if self.codes.ndim <= 1 else self.codes.shape)
        size = x.join(map(str, shape))
        lines = [f"  {size} categorical array", ""]
        names = list(np.asarray(self).reshape(shape, order="C")) if self.codes.ndim == 2 \
            else [[n] for n in np.asarray(self).reshape(-1)]
        if self.codes.ndim > 2:
            return "\n".join(lines[:1]) + "\n"
        w = max([len(n) for row in names for n in row] + [0])
        for row in names:
            lines.append("     " + "    ".join(n.ljust(w) for n in row))
        return "\n".join(lines) + "\n"

    __str__ = __repr__


def _key(v):
    if isinstance(v, str):
        return ("s", v)
    return ("s", _name(v))


def categories(c):
    """The categories of a categorical array, in order (MATLAB ``categories``): a list.

    Examples
    --------
    >>> ml.categories(ml.categorical([3, 1, 2, 1]))
    ['1', '2', '3']
    """
    if not isinstance(c, categorical):
        raise TypeError(f"categories: the input must be a categorical array, got "
                        f"{type(c).__name__}")
    return list(c._cats)


def countcats(c):
    """Number of elements in each category (MATLAB ``countcats`` of a vector)."""
    if not isinstance(c, categorical):
        raise TypeError(f"countcats: the input must be a categorical array, got "
                        f"{type(c).__name__}")
    codes = c.codes.reshape(-1)
    return np.bincount(codes[codes >= 0], minlength=len(c._cats))


def iscategorical(c):
    """True for a categorical array (MATLAB ``iscategorical``)."""
    return isinstance(c, categorical)


def as_categorical(Y, fname="trainNetwork"):
    """Labels as a categorical: categoricals as they are, strings/integers converted
    (``categorical(values)``), anything else is an error."""
    if isinstance(Y, categorical):
        return Y
    arr = np.asarray(Y, dtype=object) if not isinstance(Y, np.ndarray) else Y
    if isinstance(Y, np.ndarray) and Y.dtype.kind == "f" and Y.ndim >= 1:
        raise TypeError(f"{fname}: labels must be categorical, strings or integers, got a "
                        f"float array (use ml.categorical(Y) for numeric class labels)")
    return categorical(arr)
