"""MATLAB value rendering, the scalar layer display and the layer-array display.

Everything MATLAB prints is produced here, so the rules of MATLAB_SEMANTICS.md §6 live in
one place:

* ``format_value``: one property value as MATLAB shows it after ``Name: ``
  (``'auto'``, ``11``, ``[11 11]``, ``[]``, ``[11×96×64 single]``, ``{'in'}``, ``0.1000``).
* ``layer_text``: ``  ClassName with properties:`` + groups + footer (§6.1).
* ``layer_array_text``: ``  N×1 Layer array with layers:`` + rows (§6.4).
* ``format_size`` / ``format_for_error``: sizes and values inside error messages (§7.3).

The texts end with one newline, so ``print(text)`` writes exactly MATLAB's output,
including the blank line MATLAB leaves after a display.
"""
import math
import numbers

import numpy as np

from . import _defaults

# A short numeric row is printed inline while the whole line fits in this many columns
# (MATLAB's exact threshold is unknown; MATLAB_SEMANTICS §6.1 package default).
LINE_WIDTH = 80


def times():
    """The dimension separator: '×' (R2021b+) or 'x' (older releases), a package default."""
    return _defaults.get("times")


# --------------------------------------------------------------------------- sizes

def matlab_shape(a):
    """MATLAB's size vector of a numpy array: at least 2 dims, trailing singletons dropped.

    A 1-D numpy array has no orientation; it is shown as MATLAB shows a row (1×n).
    """
    return trim_shape(np.shape(a))


def trim_shape(shape):
    """A shape tuple as MATLAB's ``size`` reports it (1-D taken as a row)."""
    shape = tuple(int(s) for s in shape)
    if len(shape) == 0:
        return (1, 1)
    if len(shape) == 1:
        return (1, shape[0])
    while len(shape) > 2 and shape[-1] == 1:
        shape = shape[:-1]
    return shape


def format_size(shape):
    """``(11, 96, 4)`` -> ``'11×96×4'`` (the shape as given, no singleton dropping)."""
    return times().join(str(int(s)) for s in shape)


def class_name(a):
    """MATLAB class of a numpy array's dtype (float64 -> double, float32 -> single)."""
    dt = np.asarray(a).dtype
    if dt == np.float32:
        return "single"
    if dt == np.bool_:
        return "logical"
    if np.issubdtype(dt, np.integer):
        # Integer arrays inside mlayers stand for MATLAB doubles (sizes, strides, pads).
        return "double"
    if np.issubdtype(dt, np.floating):
        return "double"
    return str(dt)


# --------------------------------------------------------------------------- values

def format_scalar(x):
    """One real number as MATLAB's short format prints it in a property display.

    Integer values below 1e9 print as integers; otherwise ``%.4f`` when
    1e-3 <= |x| < 1e3 and ``%.4e`` else (thresholds inferred, §6.1).
    """
    if isinstance(x, (bool, np.bool_)):
        return "1" if x else "0"
    x = float(x)
    if math.isnan(x):
        return "NaN"
    if math.isinf(x):
        return "Inf" if x > 0 else "-Inf"
    if x == int(x) and abs(x) < 1e9:
        return str(int(x))
    if 1e-3 <= abs(x) < 1e3:
        return f"{x:.4f}"
    return f"{x:.4e}"


def _is_text(v):
    return isinstance(v, (str, np.str_))


def format_value(v, room=None):
    """A property value as MATLAB shows it after ``Name: ``.

    ``room`` is the number of columns left on the line; a numeric row longer than that is
    shown as ``[1×n double]`` instead of inline.
    """
    if v is None:
        return "[]"
    if _is_text(v):
        return "'" + str(v) + "'"
    if isinstance(v, (list, tuple)) and all(_is_text(e) for e in v):
        # A cell array of char vectors: {'out'  'indices'  'size'} (two spaces, §6.1).
        return "{" + "  ".join("'" + str(e) + "'" for e in v) + "}"
    if callable(v) and not isinstance(v, np.ndarray):
        name = getattr(v, "__name__", None) or type(v).__name__
        return "@" + name
    if isinstance(v, (bool, np.bool_, numbers.Real, np.number)) and np.ndim(v) == 0:
        return format_scalar(v)
    if type(v).__name__ == "dlarray":
        # (MATLAB names the class of a dlarray value: [1024×100 dlarray], a scalar too)
        return "[" + format_size(matlab_shape(v.data)) + " dlarray]"
    a = np.asarray(v)
    if a.dtype == object or not (np.issubdtype(a.dtype, np.number) or a.dtype == np.bool_):
        return repr(v)
    shape = matlab_shape(a)
    if a.size == 0 and shape == (0, 0):
        return "[]"
    if shape == (1, 1):
        return format_scalar(a.reshape(-1)[0])
    if len(shape) == 2 and shape[0] == 1 and shape[1] > 0:
        inline = "[" + " ".join(format_scalar(e) for e in a.reshape(-1)) + "]"
        if room is None or len(inline) <= room:
            return inline
    return "[" + format_size(shape) + " " + class_name(a) + "]"


def format_for_error(v):
    """A value inside an error message (§7.3), rendered as MATLAB shows it where possible."""
    if isinstance(v, (bool, np.bool_)):
        return repr(bool(v))                 # Python users wrote True/False
    if _is_text(v):
        return "'" + str(v) + "'"
    if v is None:
        return "None"
    if isinstance(v, (numbers.Real, np.floating, np.integer)) and np.ndim(v) == 0:
        return format_scalar(v)
    if isinstance(v, (np.ndarray, list, tuple)):
        try:
            a = np.asarray(v)
        except Exception:
            return repr(v)
        if a.dtype != object and (np.issubdtype(a.dtype, np.integer)
                                  or np.issubdtype(a.dtype, np.floating)
                                  or a.dtype == np.bool_):
            if a.size == 0:
                return "[]" if a.ndim <= 2 else format_size(a.shape) + " empty array"
            if a.size == 1 and a.dtype != np.bool_:
                return format_scalar(a.reshape(-1)[0])
            if a.size <= 8 and (a.ndim == 1 or (a.ndim == 2 and a.shape[0] == 1)):
                return "[" + " ".join(format_scalar(e) for e in a.reshape(-1)) + "]"
            if a.size <= 8 and a.ndim == 2:
                return "[" + "; ".join(" ".join(format_scalar(e) for e in r)
                                       for r in a) + "]"
            return format_size(a.shape) + " " + class_name(a) + " array"
    if callable(v):
        return format_value(v)
    return repr(v)


def int2str_row(v):
    """MATLAB's ``int2str`` of a row vector: elements separated by two spaces, ``[4  4]``.

    A 2-by-k matrix (3-D padding) keeps MATLAB's rows: ``[0  0  0; 0  0  0]``.
    """
    a = np.asarray(v)
    if a.ndim == 2 and a.shape[0] > 1:
        return "[" + "; ".join("  ".join(str(int(e)) for e in r) for r in a) + "]"
    return "[" + "  ".join(str(int(e)) for e in a.reshape(-1)) + "]"


# --------------------------------------------------------------------------- layer display

def _aligned(rows, max_len):
    """Property lines, names right-aligned with at least 4 spaces (§6.1 rule 3)."""
    out = []
    for name, value in rows:
        prefix = " " * (4 + max_len - len(name)) + name + ": "
        out.append(prefix + format_value(value, LINE_WIDTH - len(prefix)))
    return out


def layer_text(class_name_, groups, footer=True):
    """MATLAB's ``disp`` of a scalar layer.

    ``groups``: sequence of ``(title, [(name, value), ...])``; the first group is the
    untitled general group (title ``None``).  Returns the text from
    ``  <ClassName> with properties:`` through the footer, ending with a newline.
    """
    names = [n for _, rows in groups for n, _ in rows]
    max_len = max((len(n) for n in names), default=0)
    lines = [f"  {class_name_} with properties:", ""]
    first = True
    for title, rows in groups:
        if title is None:
            if rows:
                lines.extend(_aligned(rows, max_len))
                first = False
            continue
        if not first:
            lines.append("")
        first = False
        lines.append("   " + title)
        lines.extend(_aligned(rows, max_len) if rows else ["    No properties."])
    if footer:
        lines.extend(["", "  Show all properties"])
    return "\n".join(lines) + "\n"


def named(var_name, text):
    """The ``<var> = `` form: ``var = ``, a blank line, the display, a blank line."""
    return f"{var_name} = \n\n{text}\n"


# --------------------------------------------------------------------------- layer arrays

def layer_array_text(rows):
    """MATLAB's display of an N×1 layer array; ``rows`` are ``(name, type, description)``.

    Row format from MathWorks source: ``'    %2i   %-*s   %-*s   %s'``, names quoted,
    widths the maxima over all rows (§6.4).
    """
    n = len(rows)
    lines = [f"  {n}{times()}1 Layer array with layers:", ""]
    quoted = ["'" + name + "'" for name, _, _ in rows]
    name_w = max((len(q) for q in quoted), default=0)
    type_w = max((len(t) for _, t, _ in rows), default=0)
    for i, ((_, type_, desc), q) in enumerate(zip(rows, quoted), start=1):
        lines.append("    %2i   %-*s   %-*s   %s" % (i, name_w, q, type_w, type_, desc))
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- descriptions

def num2str(x):
    """MATLAB's ``num2str`` of a real scalar: ``'%.<d>g'`` with ``d = max(floor(log10|x|)
    + 5, 5)`` significant digits (MathWorks num2str: 4 digits after the integer part, at
    least 5), integers printed whole: ``0.01``, ``10``, ``3.1416``, ``0.012346``."""
    x = float(x)
    if math.isnan(x):
        return "NaN"
    if math.isinf(x):
        return "Inf" if x > 0 else "-Inf"
    if x == int(x) and abs(x) < 1e15:
        return str(int(x))
    digits = max(math.floor(math.log10(abs(x))) + 5, 5)
    return f"{x:.{min(digits, 16)}g}"


def int2str(x):
    """MATLAB's ``int2str`` of a scalar: rounded half away from zero (0.125*100 -> 13)."""
    x = float(x)
    return str(int(math.floor(abs(x) + 0.5)) * (1 if x >= 0 else -1))
