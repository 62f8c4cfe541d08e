"""Mini-batches over in-memory data: MATLAB's ``minibatchqueue``, ``arrayDatastore``,
``combine`` and the shuffling order (MATLAB_SEMANTICS §13, §16.4).

Shuffling draws ``randperm(N)`` from MATLAB's stream (``ml.rng``): a stable ascending
sort of ``rand(1, N)``, which reproduces MATLAB's documented ``randperm(6)`` =
``6 3 5 1 2 4`` from the default state.

Observations: ``arrayDatastore(X, IterationDimension=d)`` reads slices along dimension
``d`` (1-based, MATLAB's default 1).  A plain array given to ``minibatchqueue`` is read as
``trainNetwork`` reads data: along the last dimension for arrays of 3 or more dimensions
(``H×W×C×N`` images), along the first for vectors and matrices (``N×F`` features, ``N×1``
labels); a categorical along its first dimension.

Collation (``MiniBatchFcn="collate"``), MATLAB's rule: each observation is what MATLAB's
datastore reads, the slice with a singleton in the iteration dimension (an ``N×F`` matrix
gives ``1×F`` rows, ``H×W×C×N`` images ``H×W×C``, MATLAB dropping trailing singletons), and
a mini-batch concatenates them along the observation's **first singleton dimension**: rows
give ``B×F`` (format ``"BC"``, as MathWorks' PINN example writes), ``F×N`` columns read
with ``IterationDimension=2`` give ``F×B`` (``"CB"``), ``H×W×3`` images ``H×W×3×B``
(``"SSCB"``), one-channel ``H×W`` images ``H×W×B`` (``"SSBC"``, as the ``next`` reference
page writes) and one label per observation a ``B×1`` column (``"BC"``) (documented by
those pages' formats and results; inferred as the rule that gives all of them).
"""
import numbers

import numpy as np

from .. import _rng
from .._options import parse_name_value
from ..dlarray import dlarray
from .categorical import categorical

__all__ = ["minibatchqueue", "arrayDatastore", "combine", "hasdata", "shuffle", "reset",
           "partition", "randperm"]

_END_OF_DATA = ("Unable to provide a mini-batch because end of data reached. Use reset or "
                "shuffle to continue generating mini-batches from the data set.")


def randperm(n, k=None):
    """MATLAB's ``randperm(n)`` from MATLAB's stream: 1-based, as a numpy int array.

    ``randperm(n)`` is the stable ascending sort order of ``rand(1, n)`` (bit-exact with
    MATLAB for the documented cases: ``rng default; randperm(6)`` = ``6 3 5 1 2 4``).
    ``randperm(n, k)``: ``k`` distinct values of ``1..n``, the first ``k`` of that
    permutation (MATLAB's own draw for ``k < n`` is not documented: the same kind of
    sample, maybe not the same numbers; inferred).
    """
    if not isinstance(n, numbers.Integral) or n < 0:
        raise ValueError(f"randperm: n must be a nonnegative integer, got {n!r}")
    if k is not None and (not isinstance(k, numbers.Integral) or not 0 <= k <= n):
        raise ValueError(f"randperm: k must be an integer from 0 to n ({n}), got {k!r}")
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    r = _rng.rand(1, int(n)).reshape(-1)
    perm = np.argsort(r, kind="stable").astype(np.int64) + 1
    return perm if k is None else perm[:int(k)]


def _order(n):
    """0-based permutation from MATLAB's stream."""
    return randperm(n) - 1


# --------------------------------------------------------------------------- datastores

class arrayDatastore:  # noqa: N801  (MATLAB's class name)
    """Datastore over an in-memory array (MATLAB ``arrayDatastore``).

    Parameters
    ----------
    A : numpy array or categorical
    IterationDimension : int, default 1
        The (1-based) dimension along which observations are read.

    Examples
    --------
    MATLAB::

        dsX = arrayDatastore(XTrain, IterationDimension=4);

    Python::

        dsX = ml.arrayDatastore(XTrain, IterationDimension=4)
    """

    def __init__(self, A, *args, **kwargs):
        opts = parse_name_value("arrayDatastore", args, kwargs,
                                ("IterationDimension", "ReadSize", "OutputType"))
        d = opts.get("IterationDimension", 1)
        if not isinstance(d, numbers.Integral) or d < 1:
            raise ValueError(f"arrayDatastore: IterationDimension must be a positive "
                             f"integer, got {d!r}")
        self._A = A if isinstance(A, categorical) else np.asarray(A)
        self.IterationDimension = int(d)
        self.ReadSize = opts.get("ReadSize", 1)
        self.OutputType = str(opts.get("OutputType", "cell"))
        nd = max(self._A.ndim, 2)
        if self.IterationDimension > nd:
            self._n = 1
        else:
            self._n = self._A.shape[self.IterationDimension - 1] if self._A.ndim >= \
                self.IterationDimension else 1

    @property
    def NumObservations(self):
        return self._n

    def __repr__(self):
        # MATLAB's display of an ArrayDatastore (ReadSize and OutputType as given; reads
        # here take one observation at a time into minibatchqueue)
        return ("  ArrayDatastore with properties:\n\n"
                f"              ReadSize: {self.ReadSize}\n"
                f"    IterationDimension: {self.IterationDimension}\n"
                f"            OutputType: \"{self.OutputType}\"\n")

    def _columns(self):
        return [(self._A, self.IterationDimension - 1)]


class _Combined:
    def __init__(self, stores):
        self._stores = stores
        ns = {s._n for s in stores}
        if len(ns) > 1:
            raise ValueError(f"combine: the datastores must have the same number of "
                             f"observations, got {sorted(ns)}")
        self._n = ns.pop() if ns else 0

    @property
    def NumObservations(self):
        return self._n

    def _columns(self):
        return [c for s in self._stores for c in s._columns()]

    def __repr__(self):
        return f"  CombinedDatastore with {len(self._stores)} underlying datastores\n"


def combine(*stores):
    """Combine datastores column-wise (MATLAB ``combine``): one output per datastore."""
    for s in stores:
        if not hasattr(s, "_columns"):
            raise TypeError(f"combine: the inputs must be datastores, got "
                            f"{type(s).__name__}")
    return _Combined(list(stores))


def _as_columns(ds, fname):
    """(array, 0-based observation axis) per variable of a datastore or in-memory data."""
    if hasattr(ds, "_columns"):
        return ds._columns()
    items = list(ds) if isinstance(ds, (tuple, list)) and ds and all(
        isinstance(a, (np.ndarray, categorical, dlarray)) for a in ds) else [ds]
    cols = []
    for a in items:
        if isinstance(a, dlarray):
            a = a._data
        if isinstance(a, categorical):
            cols.append((a, 0))
            continue
        if not isinstance(a, np.ndarray):
            raise TypeError(f"{fname}: the data must be a datastore (arrayDatastore, "
                            f"combine) or numpy arrays, got {type(a).__name__}")
        cols.append((a, a.ndim - 1 if a.ndim >= 3 else 0))
    return cols


def _take(a, axis, idx):
    """Observations ``idx`` of ``a`` (read along ``axis``) collated as MATLAB's
    ``"collate"`` does: each observation is MATLAB's read, the slice with a singleton in
    the iteration dimension (trailing singletons dropped, at least two dimensions), and
    the observations are concatenated along its first singleton dimension (after the
    last when it has none)."""
    if isinstance(a, categorical):
        codes = a.codes if a.codes.ndim > 1 else a.codes.reshape(-1, 1)
        return categorical._from_codes(_collated(codes, axis if a.codes.ndim > 1 else 0,
                                                 idx), a._cats)
    if a.ndim == 1:                              # MATLAB's N x 1 column
        a = a.reshape(-1, 1)
    if axis >= a.ndim:                           # a scalar per observation
        a = a.reshape(a.shape + (1,) * (axis + 1 - a.ndim))
    return _collated(a, axis, idx)


def _collated(a, axis, idx):
    obs = list(a.shape)
    obs[axis] = 1
    while len(obs) > 2 and obs[-1] == 1:
        obs.pop()
    d = obs.index(1) if 1 in obs else len(obs)
    sub = np.moveaxis(np.take(a, idx, axis=axis), axis, -1)
    rest = obs[:d] + obs[d + 1:]                 # (the same elements: singletons differ)
    return np.moveaxis(sub.reshape(rest + [len(idx)]), -1, d)


def _slices(a, axis, idx):
    """A list of the observations (MiniBatchFcn's cell of observations)."""
    if isinstance(a, categorical):
        flat = a.codes if a.codes.ndim == 1 else a.codes.reshape(len(a.codes), -1)
        return [categorical._from_codes(flat[i].reshape(1, -1) if flat.ndim > 1
                                        else np.array([[flat[i]]]), a._cats) for i in idx]
    # (a copy of each observation's view: np.take copies the whole array first when it
    # is not C-contiguous, as Fortran-ordered MATLAB data is: 1.5 s a mini-batch of 4096
    # 28 x 28 images against 0.1 ms)
    lead = (slice(None),) * axis
    return [a[lead + (i,)].copy(order="K") for i in idx]


# --------------------------------------------------------------------------- the queue

_OPTIONS = ("MiniBatchSize", "PartialMiniBatch", "MiniBatchFcn", "MiniBatchFormat",
            "OutputCast", "OutputAsDlarray", "OutputEnvironment", "PreprocessingEnvironment",
            "DispatchInBackground")

_CASTS = {"single": np.float32, "double": np.float64, "int8": np.int8, "int16": np.int16,
          "int32": np.int32, "int64": np.int64, "uint8": np.uint8, "uint16": np.uint16,
          "uint32": np.uint32, "uint64": np.uint64, "logical": np.bool_, "char": None}


def _per_output(fname, name, value, n, convert):
    if isinstance(value, (list, tuple)) or (isinstance(value, np.ndarray) and value.ndim):
        vals = list(value)
        if len(vals) == 1:
            vals = vals * n
        if len(vals) != n:
            raise ValueError(f"{fname}: {name} must have one value per output ({n}), got "
                             f"{len(vals)} (the outputs are the datastore's columns unless "
                             f"numOutputs is given: minibatchqueue(ds, {len(vals)}, ...) for "
                             f"a MiniBatchFcn with {len(vals)})")
    else:
        vals = [value] * n
    return [convert(v) for v in vals]


class minibatchqueue:  # noqa: N801  (MATLAB's class name)
    """Create and preprocess mini-batches for custom training loops (MATLAB ``minibatchqueue``).

    Parameters
    ----------
    ds : datastore (``arrayDatastore``, ``combine(...)``), numpy array, categorical, or a
        tuple of arrays (one output each; see the module docstring for the observation
        dimension of plain arrays)
    numOutputs : int, optional
        Number of outputs (default: the number of data variables, or of ``MiniBatchFcn``'s
        outputs).
    MiniBatchSize : int, default 128
    PartialMiniBatch : {"return", "discard"}
    MiniBatchFcn : "collate" or a function of one list of observations per variable,
        returning the outputs (a tuple for several)
    MiniBatchFormat : str or list of str, default ""
    OutputCast : str or list, default "single"
    OutputAsDlarray : bool or list, default True
    OutputEnvironment : "auto", "cpu" ("gpu" is not available)
    PreprocessingEnvironment : "serial"

    Methods
    -------
    hasdata(), next() (also Python's ``next(mbq)``), reset(), shuffle(), partition(n, i)

    Examples
    --------
    MATLAB::

        mbq = minibatchqueue(ds, MiniBatchSize=128, MiniBatchFcn=@preprocessMiniBatch, ...
                             MiniBatchFormat=["SSCB" ""]);
        while hasdata(mbq)
            [X, T] = next(mbq);
        end

    Python::

        mbq = ml.minibatchqueue(ds, MiniBatchSize=128, MiniBatchFcn=preprocessMiniBatch,
                                MiniBatchFormat=["SSCB", ""])
        while ml.hasdata(mbq):
            X, T = next(mbq)
    """

    def __init__(self, ds, *args, **kwargs):
        fname = "minibatchqueue"
        args = list(args)
        numOutputs = None
        if args and isinstance(args[0], numbers.Integral) and not isinstance(args[0], bool):
            numOutputs = int(args.pop(0))
            if numOutputs < 1:
                raise ValueError(f"{fname}: numOutputs must be a positive integer, got "
                                 f"{numOutputs}")
        opts = parse_name_value(fname, args, kwargs, _OPTIONS)
        self._cols = _as_columns(ds, fname)
        ns = {(len(a.codes) if isinstance(a, categorical) and ax == 0 else
               (a.shape[ax] if ax < a.ndim else 1)) for a, ax in self._cols}
        if len(ns) != 1:
            raise ValueError(f"{fname}: every data variable must have the same number of "
                             f"observations, got {sorted(ns)}")
        self._n = ns.pop()
        mbs = opts.get("MiniBatchSize", 128)
        if (not isinstance(mbs, numbers.Integral) or isinstance(mbs, bool) or mbs < 1):
            raise ValueError(f"{fname}: MiniBatchSize must be a positive integer, got {mbs!r}")
        self.MiniBatchSize = int(mbs)
        pmb = str(opts.get("PartialMiniBatch", "return")).lower()
        if pmb not in ("return", "discard"):
            raise ValueError(f"{fname}: PartialMiniBatch must be 'return' or 'discard', got "
                             f"{opts.get('PartialMiniBatch')!r}")
        self.PartialMiniBatch = pmb
        fcn = opts.get("MiniBatchFcn", "collate")
        if not (callable(fcn) or (isinstance(fcn, str) and fcn == "collate")):
            raise TypeError(f"{fname}: MiniBatchFcn must be 'collate' or a function, got "
                            f"{fcn!r}")
        self.MiniBatchFcn = fcn
        if numOutputs is None:
            numOutputs = len(self._cols)
            if callable(fcn):
                numOutputs = getattr(fcn, "_nargout", None) or len(self._cols)
        elif fcn == "collate" and numOutputs != len(self._cols):
            raise ValueError(f"{fname}: numOutputs must equal the number of data variables "
                             f"({len(self._cols)}) without a MiniBatchFcn, got {numOutputs}")
        self._nout = numOutputs
        n = numOutputs

        def fmt(v):
            v = "" if v is None else str(v)
            if any(c not in "SCBTU" for c in v.upper()):
                raise ValueError(f"{fname}: MiniBatchFormat must be a dlarray format "
                                 f"(letters S, C, B, T, U), got {v!r}")
            return v.upper()
        self.MiniBatchFormat = _per_output(fname, "MiniBatchFormat",
                                           opts.get("MiniBatchFormat", ""), n, fmt)

        def cast(v):
            v = str(v)
            if v not in _CASTS:
                raise ValueError(f"{fname}: OutputCast must be one of "
                                 f"{', '.join(repr(c) for c in _CASTS)}, got {v!r}")
            return v
        self.OutputCast = _per_output(fname, "OutputCast", opts.get("OutputCast", "single"),
                                      n, cast)

        def flag(v):
            if isinstance(v, (bool, np.bool_)) or v in (0, 1):
                return bool(v)
            raise ValueError(f"{fname}: OutputAsDlarray must be true or false, got {v!r}")
        self.OutputAsDlarray = _per_output(fname, "OutputAsDlarray",
                                           opts.get("OutputAsDlarray", True), n, flag)

        def env(v):
            v = str(v)
            if v not in ("auto", "cpu"):
                raise ValueError(f"{fname}: OutputEnvironment must be 'auto' or 'cpu' (no GPU "
                                 f"here), got {v!r}")
            return v
        self.OutputEnvironment = _per_output(fname, "OutputEnvironment",
                                             opts.get("OutputEnvironment", "auto"), n, env)
        pe = str(opts.get("PreprocessingEnvironment", "serial"))
        if pe not in ("serial", "background", "parallel"):
            raise ValueError(f"{fname}: PreprocessingEnvironment must be 'serial', "
                             f"'background' or 'parallel', got {pe!r}")
        self.PreprocessingEnvironment = pe
        self._order = np.arange(self._n)
        self._pos = 0

    # ------------------------------------------------------------- iteration

    @property
    def NumOutputs(self):
        return self._nout

    def _batch_count(self):
        B = self.MiniBatchSize
        full, rest = divmod(self._n, B)
        return full + (1 if rest and self.PartialMiniBatch == "return" else 0)

    def hasdata(self):
        """True while another mini-batch is available."""
        remaining = self._n - self._pos
        if remaining <= 0:
            return False
        return remaining >= self.MiniBatchSize or self.PartialMiniBatch == "return"

    def next(self, nargout=None):
        """The next mini-batch: one output, or a tuple of ``NumOutputs`` outputs;
        ``nargout=k`` the first k (MATLAB's ``X = next(mbq)`` of a queue of several
        outputs is ``mbq.next(nargout=1)``)."""
        if nargout is not None and (isinstance(nargout, bool) or not isinstance(
                nargout, int) or not 1 <= nargout <= self._nout):
            raise ValueError(f"next: nargout must be an integer from 1 to NumOutputs "
                             f"({self._nout}), got {nargout!r}")
        if not self.hasdata():
            raise RuntimeError(f"next: {_END_OF_DATA}")
        idx = self._order[self._pos:self._pos + self.MiniBatchSize]
        self._pos += len(idx)
        if callable(self.MiniBatchFcn):
            cells = [_slices(a, ax, idx) for a, ax in self._cols]
            outs = self.MiniBatchFcn(*cells)
            outs = outs if isinstance(outs, tuple) else (outs,)
            if len(outs) < self._nout:
                raise ValueError(f"next: MiniBatchFcn returned {len(outs)} outputs, "
                                 f"{self._nout} expected")
            outs = outs[:self._nout]
        else:
            outs = tuple(_take(a, ax, idx) for a, ax in self._cols)
        result = tuple(self._finish(o, k) for k, o in enumerate(outs))[:nargout]
        return result[0] if len(result) == 1 else result

    def __next__(self):
        return self.next()

    def __iter__(self):
        while self.hasdata():
            yield self.next()

    def _finish(self, o, k):
        if isinstance(o, categorical):
            return o
        if isinstance(o, dlarray):
            data, was = o._data, o
        else:
            data, was = np.asarray(o), None
        cast = _CASTS[self.OutputCast[k]]
        if cast is not None and data.dtype != cast:
            data = data.astype(cast)
        if not self.OutputAsDlarray[k]:
            return data
        if was is not None and was.dims and not self.MiniBatchFormat[k]:
            return dlarray._from_canonical(data, was.dims)
        fmt = self.MiniBatchFormat[k]
        if data.dtype.kind not in "f":
            data = data.astype(np.float32)
        return dlarray(data, fmt) if fmt else dlarray(data)

    def reset(self):
        """Start again from the first mini-batch (same order)."""
        self._pos = 0
        return self

    def shuffle(self):
        """Reset and shuffle the observations (``randperm`` from MATLAB's stream)."""
        self._order = _order(self._n)
        self._pos = 0
        return self

    def partition(self, numParts, index):
        """The ``index``-th (1-based) of ``numParts`` interleaved parts, as a new queue."""
        if not (isinstance(numParts, numbers.Integral) and numParts >= 1):
            raise ValueError(f"partition: numParts must be a positive integer, got "
                             f"{numParts!r}")
        if not (isinstance(index, numbers.Integral) and 1 <= index <= numParts):
            raise ValueError(f"partition: index must be an integer in [1, {numParts}], got "
                             f"{index!r}")
        import copy
        q = copy.copy(self)
        q._order = self._order[index - 1::numParts].copy()
        q._n = len(q._order)
        q._pos = 0
        return q

    # ------------------------------------------------------------- display

    def __repr__(self):
        def cell(vals, quote=True):
            inner = "  ".join(f"'{v}'" if quote else str(v) for v in vals)
            return "{" + inner + "}"
        n = self._nout
        flags = [int(b) for b in self.OutputAsDlarray]
        flag_text = str(flags[0]) if n == 1 else "[" + " ".join(map(str, flags)) + "]"
        fcn = ("'collate'" if not callable(self.MiniBatchFcn)
               else "@" + getattr(self.MiniBatchFcn, "__name__", "fcn"))
        rows = [("MiniBatchSize", str(self.MiniBatchSize)),
                ("PartialMiniBatch", f"'{self.PartialMiniBatch}'"),
                ("MiniBatchFcn", fcn),
                ("PreprocessingEnvironment", f"'{self.PreprocessingEnvironment}'")]
        outs = [("OutputCast", cell(self.OutputCast)),
                ("OutputAsDlarray", flag_text),
                ("MiniBatchFormat", cell(self.MiniBatchFormat)),
                ("OutputEnvironment", cell(self.OutputEnvironment))]
        w = max(len(k) for k, _ in rows + outs)
        plural = "output" if n == 1 else "outputs"
        lines = [f"  minibatchqueue with {n} {plural} and properties:",
                 "   Mini-batch creation:"]
        lines += [f"    {k.rjust(w)}: {v}" for k, v in rows]
        lines += ["   Outputs:"]
        lines += [f"    {k.rjust(w)}: {v}" for k, v in outs]
        return "\n".join(lines) + "\n"

    __str__ = __repr__


def _method(mbq, fname):
    """``mbq``'s method ``fname``; a named TypeError for anything that is not a
    minibatchqueue (a raw AttributeError would name nothing)."""
    if not isinstance(mbq, minibatchqueue):
        raise TypeError(f"{fname}: mbq must be a minibatchqueue, got {type(mbq).__name__}")
    return getattr(mbq, fname)


def hasdata(mbq):
    """MATLAB ``hasdata(mbq)``."""
    return _method(mbq, "hasdata")()


def shuffle(mbq):
    """MATLAB ``shuffle(mbq)``: reset and shuffle (from MATLAB's stream)."""
    return _method(mbq, "shuffle")()


def reset(mbq):
    """MATLAB ``reset(mbq)``."""
    return _method(mbq, "reset")()


def partition(mbq, numParts, index):
    """MATLAB ``partition(mbq, numParts, index)``."""
    return _method(mbq, "partition")(numParts, index)
