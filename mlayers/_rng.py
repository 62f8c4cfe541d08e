"""MATLAB's default random stream: ``rng``, ``rand`` and ``randn`` on Mersenne Twister.

MATLAB starts every session with the Mersenne Twister (MT19937) seeded with 0, and seed 0
means ``init_genrand(5489)`` while a seed ``s >= 1`` means ``init_genrand(s)``.  numpy's
legacy ``RandomState(s)`` is the same ``init_genrand(s)``, and its ``random_sample`` is the
same ``genrand_res53`` that MATLAB's double ``rand`` uses, so uniform draws agree with
MATLAB bit for bit (MATLAB_SEMANTICS §5.2)::

    rng(0); rand(1,5)   ->  0.8147 0.9058 0.1270 0.9134 0.6324

Arrays fill in MATLAB's column-major order: ``rand(m,n,p)`` is
``random_sample(m*n*p).reshape((m,n,p), order='F')``, a Fortran-ordered array whose
element ``[i,j,k]`` is MATLAB's ``(i+1,j+1,k+1)``.

What is *not* MATLAB's (MATLAB's algorithm is unknown, §5.2 and §9.3):

* ``randn`` uses numpy's normals (polar Box-Muller) from the same MT state, not MATLAB's
  Ziggurat variant.  Shapes, fill order and the distribution match; values do not.
* ``rand(..., "single")`` draws doubles and casts them to float32.  MATLAB's single
  stream may use one 32-bit draw per value instead; the first value agrees either way.

One module-level stream serves ``rand``/``randn`` here and the layer initializers, so
``rng(0)`` before building a network makes its initial weights reproducible.
"""
import numbers
import time

import numpy as np

from ._display import format_for_error, format_size
from ._validate import check_allocation

__all__ = ["rng", "rand", "randn", "RandomSettings"]

_MT_DEFAULT_SEED = 5489       # MATLAB seed 0 == init_genrand(5489)
_SEED_LIMIT = 2**32
_N = 624                      # MT19937 state words; MATLAB's State is these + the position


class RandomSettings:
    """Random number generator settings, MATLAB's ``s = rng`` structure.

    Attributes
    ----------
    Type : str
        Generator name, always ``'twister'``.
    Seed : int
        The seed the stream was last seeded with (``0`` for ``rng default``).
    State : numpy.ndarray
        ``625`` uint32 values: the 624 Mersenne Twister words followed by the position in
        them, MATLAB's ``625×1`` layout (inferred from the MT19937 reference code).

    Examples
    --------
    MATLAB::

        s = rng;            % save
        u1 = rand(1,3);
        rng(s);             % restore
        u2 = rand(1,3);     % isequal(u1,u2)

    Python::

        >>> import mlayers as ml
        >>> s = ml.rng()
        >>> u1 = ml.rand(1, 3)
        >>> _ = ml.rng(s)
        >>> bool((ml.rand(1, 3) == u1).all())
        True
    """

    __slots__ = ("Type", "Seed", "State", "_gauss")

    def __init__(self, Type="twister", Seed=0, State=None, _gauss=(0, 0.0)):
        self.Type = Type
        self.Seed = Seed
        self.State = State
        # numpy keeps one cached normal between randn calls; it is part of the stream's
        # state (not of MATLAB's), so it travels privately with the settings.
        self._gauss = _gauss

    def __repr__(self):
        return ("  struct with fields:\n\n"
                f"     Type: '{self.Type}'\n"
                f"     Seed: {self.Seed}\n"
                f"    State: [{len(self.State)}×1 uint32]\n")

    def __eq__(self, other):
        if not isinstance(other, RandomSettings):
            return NotImplemented
        return (self.Type == other.Type and self.Seed == other.Seed
                and np.array_equal(self.State, other.State) and self._gauss == other._gauss)

    __hash__ = None


_stream = np.random.RandomState(_MT_DEFAULT_SEED)
_seed = 0


def _current_settings():
    _, key, pos, has_gauss, cached = _stream.get_state()
    state = np.empty(_N + 1, dtype=np.uint32)
    state[:_N] = key
    state[_N] = pos
    return RandomSettings("twister", _seed, state, (int(has_gauss), float(cached)))


def _check_seed(seed):
    """The seed as an int; MATLAB accepts integer values 0 <= seed < 2^32 of any class."""
    if isinstance(seed, np.ndarray) and seed.size == 1:
        seed = seed.item()
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, numbers.Real):
        raise TypeError("rng: seed must be a nonnegative integer less than 2^32, "
                        f"'default', 'shuffle' or settings returned by rng, got {seed!r}")
    if not np.isfinite(seed) or seed != int(seed) or not 0 <= seed < _SEED_LIMIT:
        raise ValueError(f"rng: seed must be a nonnegative integer less than 2^32, got {seed!r}")
    return int(seed)


def _check_generator(generator):
    if generator is None:
        return
    if not isinstance(generator, str):
        raise TypeError(f"rng: generator must be a string, got {generator!r}")
    if generator.lower() not in ("twister", "default"):
        raise ValueError("rng: generator must be 'twister' (the only generator mlayers "
                         f"implements), got {generator!r}")


def _restore(settings):
    if isinstance(settings, RandomSettings):
        typ, seed, state, gauss = settings.Type, settings.Seed, settings.State, settings._gauss
    else:
        try:
            typ, seed, state = settings["Type"], settings["Seed"], settings["State"]
        except (KeyError, TypeError):
            raise TypeError("rng: settings must be a RandomSettings or a mapping with fields "
                            f"Type, Seed and State, got {settings!r}") from None
        gauss = (0, 0.0)
    _check_generator(str(typ))
    key, pos = _check_state(state)
    seed = _check_seed(seed)          # everything is checked before the stream changes
    _stream.set_state(("MT19937", key, pos, int(gauss[0]), float(gauss[1])))
    global _seed
    _seed = seed


def _check_state(state):
    """MATLAB's twister State -> (624 uint32 key words, position), or raise.

    MATLAB's rules (``rng`` documentation: "State: 625-element uint32 column vector"):
    625 integer values in [0, 2^32), the last one the position in the first 624, which
    is at most 624.  The key must not be the degenerate all-zero state of MT19937 (only
    the top bit of word 0 and words 1-623 count): from it the generator yields only zeros,
    so ``rand`` would return exact zeros and every rejection loop drawing normals
    (``randn``, the 'he' and 'narrow-normal' initializers) would never end.  Any other
    state stays non-degenerate forever (MT19937's recurrence is a bijection of the
    nonzero states), so after this check no draw can spin.
    """
    constraint = ("625 uint32 values (the 624 Mersenne Twister words and the position "
                  "0..624, as returned by rng)")
    try:
        a = np.asarray(state)
    except Exception:
        a = None
    if a is None or a.dtype == object or a.dtype == np.bool_ or not (
            np.issubdtype(a.dtype, np.integer) or np.issubdtype(a.dtype, np.floating)):
        raise TypeError(f"rng: State must be {constraint}, got "
                        f"{type(state).__name__ if a is None else a.dtype}")
    a = a.ravel(order="F")
    if a.shape != (_N + 1,):
        raise ValueError(f"rng: State must be {constraint}, got {a.size} values")
    if not np.all(np.isfinite(a)) or np.any(a != np.floor(a)) \
            or np.any(a < 0) or np.any(a >= _SEED_LIMIT):
        bad = a[~(np.isfinite(a) & (a == np.floor(a)) & (a >= 0) & (a < _SEED_LIMIT))][0]
        raise ValueError(f"rng: State must be {constraint}, got the value "
                         f"{format_for_error(bad)}")
    key = a[:_N].astype(np.uint32)
    pos = int(a[_N])
    if not 0 <= pos <= _N:
        raise ValueError(f"rng: State(625) must be a position between 0 and 624, got {pos}")
    if not (key[0] & np.uint32(0x80000000)) and not key[1:].any():
        raise ValueError("rng: State must not be the all-zero Mersenne Twister state "
                         "(words 2..624 zero and the top bit of word 1 clear): the generator "
                         "would return only zeros, got such a State")
    return key, pos


def rng(seed=None, generator=None):
    """Control MATLAB's random stream (``rng``).

    Parameters
    ----------
    seed : int, "default", "shuffle", RandomSettings or mapping, optional
        ``0`` or ``"default"``: the state MATLAB starts with (MT19937 seeded with 5489).
        An integer ``1 <= seed < 2**32``: ``init_genrand(seed)``, as MATLAB.
        ``"shuffle"``: a seed from the current time.  Settings from an earlier ``rng()``
        call (or a mapping with ``Type``, ``Seed`` and ``State``): restore that state.
        Omitted: leave the stream alone and just return its settings.
    generator : str, optional
        ``"twister"`` (the only generator implemented; ``"default"`` is accepted too).

    Returns
    -------
    RandomSettings
        The settings *before* the call, as MATLAB's ``t = rng(...)``.

    Examples
    --------
    MATLAB::

        rng(0); rand(1,5)       % 0.8147 0.9058 0.1270 0.9134 0.6324
        rng default
        s = rng;                % save the state
        rng(s)                  % restore it

    Python::

        >>> import mlayers as ml
        >>> _ = ml.rng(0)
        >>> ml.rand(1, 5).round(4)
        array([[0.8147, 0.9058, 0.127 , 0.9134, 0.6324]])
        >>> s = ml.rng()
        >>> _ = ml.rng(s)
    """
    global _seed
    previous = _current_settings()
    if seed is None:
        if generator is not None:
            raise TypeError("rng: a generator needs a seed, e.g. rng(0, 'twister'), "
                            f"got generator {generator!r} alone")
        return previous
    if isinstance(seed, RandomSettings) or (hasattr(seed, "keys") and not isinstance(seed, str)):
        if generator is not None:
            raise TypeError("rng: settings cannot be combined with a generator, "
                            f"got generator {generator!r}")
        _restore(seed)
        return previous
    _check_generator(generator)
    if isinstance(seed, str):
        key = seed.lower()
        if key == "default":
            if generator is not None:
                raise TypeError("rng: 'default' takes no generator, got "
                                f"generator {generator!r}")
            seed = 0
        elif key == "shuffle":
            seed = time.time_ns() % _SEED_LIMIT
        else:
            raise ValueError("rng: seed must be a nonnegative integer less than 2^32, "
                             f"'default' or 'shuffle', got {seed!r}")
    seed = _check_seed(seed)
    _stream.seed(seed if seed else _MT_DEFAULT_SEED)
    _seed = seed
    return previous


# --------------------------------------------------------------------------- sizes

_CLASSES = {"double": np.float64, "single": np.float32}


def _size_value(v, fname):
    """One size entry as an int: integer-valued, finite; negative means 0 (MATLAB)."""
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, numbers.Real):
        raise TypeError(f"{fname}: size inputs must be real integers, got {v!r}")
    if not np.isfinite(v):
        raise ValueError(f"{fname}: size inputs must be finite integers, got {v!r}")
    if v != int(v):
        raise ValueError(f"{fname}: size inputs must be integers, got {v!r}")
    return max(int(v), 0)


def _like(args, fname):
    """``(args, prototype)``: the trailing ``"like", p`` pair split off (MATLAB's
    ``randn(sz, "like", p)``: p's class, single or double, and a dlarray if p is one)."""
    if args and isinstance(args[-1], str) and args[-1].lower() == "like":
        raise TypeError(f"{fname}: 'like' must be followed by a prototype array, got "
                        f"nothing")
    if len(args) >= 2 and isinstance(args[-2], str) and args[-2].lower() == "like":
        p = args[-1]
        from .dlarray import dlarray
        # (a Python number is a MATLAB double)
        kind = (np.dtype(np.float64) if isinstance(p, (int, float)) and not isinstance(p, bool)
                else np.asarray(p._data if isinstance(p, dlarray) else p).dtype)
        if kind not in (np.float32, np.float64):
            raise TypeError(f"{fname}: the prototype after 'like' must be single or double "
                            f"data, got {kind}")
        return args[:-2] + ("single" if kind == np.float32 else "double",), p
    return args, None


def _with_like(args, kwargs, fname):
    """``args`` with MATLAB's ``like=p`` (R2021a name=value form of ``"like", p``)
    appended as the pair."""
    for key, value in kwargs.items():
        if key.lower() != "like":
            raise TypeError(f"{fname}: the only name-value argument is like=p, got {key}=")
        return tuple(args) + ("like", value)
    return tuple(args)


def _parse_size(args, fname):
    """MATLAB's ``rand`` size conventions -> (shape tuple, dtype)."""
    dtype = np.float64
    if args and isinstance(args[-1], str):
        name = args[-1].lower()
        if name not in _CLASSES:
            raise ValueError(f"{fname}: classname must be 'double' or 'single', "
                             f"got {args[-1]!r}")
        dtype = _CLASSES[name]
        args = args[:-1]
    for a in args:
        if isinstance(a, str):
            raise TypeError(f"{fname}: the classname must be the last argument, got {a!r} "
                            "before a size")
    if not args:
        return (1, 1), dtype
    vectors = [a for a in args if isinstance(a, (list, tuple, np.ndarray))]
    if vectors:
        if len(args) > 1:
            raise TypeError(f"{fname}: a size vector must be the only size input, "
                            f"got {len(args)} size inputs")
        vec = np.asarray(args[0], dtype=object) if not isinstance(args[0], np.ndarray) \
            else args[0]
        if vec.ndim == 2 and vec.shape[0] == 1:
            vec = vec[0]
        if vec.ndim != 1:
            shape = "×".join(str(s) for s in vec.shape)
            raise ValueError(f"{fname}: size vector must be a row vector of integers, "
                             f"got a {shape} array")
        if vec.dtype.kind in "US":
            raise TypeError(f"{fname}: size inputs must be real integers, got {args[0]!r}")
        entries = list(vec)
        if len(entries) == 0:
            return (0, 0), dtype
    else:
        entries = list(args)
    shape = tuple(_size_value(v, fname) for v in entries)
    if len(shape) == 1:
        shape = (shape[0], shape[0])
    return shape, dtype


def _fill(draw, args, fname):
    args, like = _like(args, fname)
    out = _draw(draw, args, fname)
    from .dlarray import dlarray
    # (an unformatted dlarray, untraced: random numbers are constants)
    return dlarray(out) if isinstance(like, dlarray) else out


def _draw(draw, args, fname):
    shape, dtype = _parse_size(args, fname)
    # sizes multiplied in Python integers (int64 would wrap for rand(2^40)); MATLAB refuses
    # arrays larger than its maximum array size preference (the machine's memory)
    n = check_allocation(fname, "the requested array", shape, np.dtype(dtype).itemsize)
    extent = np.dtype(dtype).itemsize
    for s in shape:
        extent *= max(s, 1)
    if extent > np.iinfo(np.intp).max:   # numpy's limit, even for an empty array
        raise ValueError(f"{fname}: the size inputs' nonzero product must be below "
                         f"2^63 bytes (numpy's maximum array size), got {format_size(shape)}")
    # Column-major fill: the k-th draw is MATLAB's X(k).
    out = draw(n).reshape(shape, order="F")
    if dtype is not np.float64:
        out = out.astype(dtype, order="F")
    return out


def rand(*sz, **kwargs):
    """Uniform random numbers on (0, 1) from MATLAB's stream (``rand``).

    Parameters
    ----------
    *sz : int, or one size vector, then optionally "double" or "single", or "like", p
        (or ``like=p``)
        MATLAB's size forms: ``rand()`` is 1×1, ``rand(n)`` is n×n, ``rand(m, n, p)`` and
        ``rand([m, n, p])`` are m×n×p.  Trailing singleton sizes are kept in the shape
        (``rand(3, 1, 1)`` has shape ``(3, 1, 1)``).  Negative sizes count as 0, as in
        MATLAB.

    Returns
    -------
    numpy.ndarray
        Fortran-ordered float64 (or float32 for ``"single"``) array of exactly that size,
        filled column-major: the same numbers MATLAB puts at the same indices.  With
        ``"like", p``: p's precision, and an (unformatted) dlarray when p is one.

    Notes
    -----
    ``"single"`` draws doubles and casts them; MATLAB's single stream is unknown (its first
    value agrees, later ones may not).

    Examples
    --------
    MATLAB::

        rng(0); rand(2,2)       % [0.8147 0.1270; 0.9058 0.9134]

    Python::

        >>> import mlayers as ml
        >>> _ = ml.rng(0)
        >>> ml.rand(2, 2).round(4)
        array([[0.8147, 0.127 ],
               [0.9058, 0.9134]])
    """
    return _fill(_stream.random_sample, _with_like(sz, kwargs, "rand"), "rand")


def randn(*sz, **kwargs):
    """Standard normal random numbers from MATLAB's stream (``randn``), MATLAB sizes.

    Takes the same size arguments as :func:`rand` and fills column-major in the same way.

    Notes
    -----
    The normals come from numpy's generator on the same Mersenne Twister state (polar
    Box-Muller), not from MATLAB's Ziggurat, whose details are unknown: shapes and the
    distribution match MATLAB, the values do not (``rng(0); randn`` is 0.5377 in MATLAB).

    Examples
    --------
    MATLAB::

        rng(0); W = 0.01*randn(3,3,16);   % 'narrow-normal' weights

    Python::

        >>> import mlayers as ml
        >>> _ = ml.rng(0)
        >>> (0.01 * ml.randn(3, 3, 16)).shape
        (3, 3, 16)
    """
    return _fill(_stream.standard_normal, _with_like(sz, kwargs, "randn"), "randn")


def zeros(*sz, **kwargs):
    """MATLAB's ``zeros``: the size forms of :func:`rand` (``zeros(3)``, ``zeros(2, 3,
    "single")``, ``zeros(sz, "like", p)``), a Fortran-ordered array (a dlarray for a
    dlarray prototype).

    Examples
    --------
    MATLAB::

        parameters.fc.Bias = dlarray(zeros(10, 1, "single"));

    Python::

        >>> import mlayers as ml
        >>> ml.zeros(10, 1, "single").dtype
        dtype('float32')
    """
    return _fill(lambda n: np.zeros(n), _with_like(sz, kwargs, "zeros"), "zeros")


def ones(*sz, **kwargs):
    """MATLAB's ``ones``, with the size forms of :func:`zeros`."""
    return _fill(lambda n: np.ones(n), _with_like(sz, kwargs, "ones"), "ones")
