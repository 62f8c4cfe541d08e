"""MATLAB name-value parsing and ``validatestring`` (MATLAB_SEMANTICS §1.4).

In MATLAB, ``f(a, b, 'Stride', 4, Name="x")`` passes ``'Stride', 4`` as a positional
pair and ``Name="x"`` as a trailing pair; Python delivers the same call as extra
positional arguments and keywords, so pairs always come before keywords, as in MATLAB.

Rules, applied identically to pairs and keywords:

1. an exact case-insensitive match wins, even when it prefixes another name
   (``Bias`` vs ``BiasInitializer``);
2. otherwise a unique case-insensitive prefix is accepted (``str`` -> ``Stride``);
3. an ambiguous prefix or an unknown name is a ``TypeError`` listing the candidates;
4. a repeated name: the last value wins; a name without a value, or a non-text name,
   is a ``TypeError``.
"""
import numpy as np

from ._display import format_for_error


def _is_text(v):
    return isinstance(v, (str, np.str_))


def match_name(fname, name, valid):
    """Canonical spelling of ``name`` among ``valid`` under rules 1-3 above."""
    if not _is_text(name):
        raise TypeError(f"{fname}: option names must be text, got {format_for_error(name)}")
    key = str(name).lower()
    for v in valid:
        if v.lower() == key:
            return v
    hits = [v for v in valid if v.lower().startswith(key)] if key else []
    if len(hits) == 1:
        return hits[0]
    if hits:
        raise TypeError(f"{fname}: name '{name}' is ambiguous: {', '.join(_grouped(hits))}")
    raise TypeError(f"{fname}: unknown name '{name}'; valid names are: {', '.join(valid)}")


def _grouped(hits):
    """Candidates in declaration order, each name followed by the names extending it
    (``Weights, WeightsInitializer, WeightLearnRateFactor, ...``), for readable lists."""
    roots = [h for h in hits if not any(o != h and h.startswith(o) for o in hits)]
    out = []
    for r in sorted(roots, key=lambda r: min(hits.index(h) for h in hits if h.startswith(r))):
        out.append(r)
        out.extend(h for h in hits if h != r and h.startswith(r))
    return out


def parse_name_value(fname, pairs, keywords, valid):
    """Merge ``'Name', value`` pairs and ``Name=value`` keywords into one dict.

    Parameters
    ----------
    fname : str
        MATLAB function name used in messages.
    pairs : sequence
        The positional arguments after the required ones: name, value, name, value, ...
    keywords : dict
        Python keyword arguments (MATLAB's ``Name=Value``).
    valid : sequence of str
        The canonical option names.

    Returns
    -------
    dict
        Canonical name -> value, in order of first appearance; the last value wins.
    """
    pairs = list(pairs)
    out = {}
    if len(pairs) % 2:
        last = pairs[-1]
        if _is_text(last):
            raise TypeError(f"{fname}: name '{last}' has no value; name-value arguments "
                            f"must come in pairs")
        raise TypeError(f"{fname}: expected a name-value pair, got an unpaired value "
                        f"{format_for_error(last)}")
    for i in range(0, len(pairs), 2):
        out[match_name(fname, pairs[i], valid)] = pairs[i + 1]
    for name, value in keywords.items():
        out[match_name(fname, name, valid)] = value
    return out


def validatestring(value, choices, fname, argname):
    """MATLAB's ``validatestring``: the canonical choice ``value`` names.

    Case-insensitive; a unique prefix is accepted; when several choices match and one of
    them is a prefix of all the others, the shortest wins; any other multiple match
    (``'symmetric'`` for the two symmetric padding modes) is ambiguous.

    Raises ``TypeError`` for non-text values and ``ValueError`` for text that names no
    choice or several.
    """
    if not _is_text(value):
        raise TypeError(f"{fname}: {argname} must be one of "
                        f"{', '.join(repr(c) for c in choices)}, got {format_for_error(value)}")
    key = str(value).lower()
    for c in choices:
        if c.lower() == key:
            return c
    hits = [c for c in choices if key and c.lower().startswith(key)]
    if len(hits) == 1:
        return hits[0]
    if hits:
        shortest = min(hits, key=len)
        if all(h.lower().startswith(shortest.lower()) for h in hits):
            return shortest
        raise ValueError(f"{fname}: {argname} must be one of "
                         f"{', '.join(repr(c) for c in choices)}, got '{value}', which is "
                         f"ambiguous between {', '.join(repr(h) for h in hits)}")
    raise ValueError(f"{fname}: {argname} must be one of "
                     f"{', '.join(repr(c) for c in choices)}, got '{value}'")
