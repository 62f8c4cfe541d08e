"""A small MATLAB-like table: ``net.Learnables``, ``net.State``, ``lgraph.Connections``.

Columns are named (``t.Layer``, ``t.Value``), rows are named tuples (``t[i]``).  A table
is a container for :func:`mlayers.dlfeval`/:func:`mlayers.dlgradient`: its ``Value``
column is traced and a gradient with respect to a table is a table of the same rows.
"""
import functools
from collections import namedtuple

import numpy as np

from . import _display
from .dlarray import dlarray

__all__ = ["Table"]


@functools.lru_cache(maxsize=64)
def _row_type(names):
    """One named-tuple class per set of column names (creating one costs ~50 us)."""
    return namedtuple("Row", names)


class _Column(list):
    """A column of a table, as a list; assigning an element writes it back to the table
    (MATLAB's ``gradients.Value{i} = ...`` is ``gradients.Value[i] = ...``)."""

    def __init__(self, table, name, values):
        super().__init__(values)
        self._table, self._name = table, name

    def __setitem__(self, i, value):
        super().__setitem__(i, value)
        setattr(self._table, self._name, list(self))


class Table:
    """A small MATLAB-like table: named columns of equal length, MATLAB-like display.

    ``t.Layer`` (a column as a list), ``t[i]`` (row ``i`` as a named tuple),
    ``len(t)``, iteration over rows, ``t.VariableNames``.
    """

    def __init__(self, names, rows):
        self._row = _row_type(tuple(names))
        self._rows = list(map(self._row._make, rows))
        self.VariableNames = list(names)

    def __reduce__(self):
        # (its rows' named-tuple class is made per set of names, which pickle cannot
        # find by name: the table is rebuilt from its names and plain rows)
        return Table, (list(self.VariableNames), [tuple(r) for r in self._rows])

    def _traced_copy(self, fn):
        """The same rows with ``fn`` applied to every value of the ``Value`` column."""
        if "Value" not in self.VariableNames:
            return self
        j = self.VariableNames.index("Value")
        return Table(self.VariableNames,
                     [r[:j] + (fn(r[j]),) + r[j + 1:] for r in self._rows])

    def __len__(self):
        return len(self._rows)

    def __iter__(self):
        return iter(self._rows)

    def __getitem__(self, i):
        """``t[i]``: row ``i`` (a named tuple).  ``t[rows]`` with a slice, a list of
        indices or a boolean mask (MATLAB's ``t(idx, :)``): a table of those rows."""
        if isinstance(i, (int, np.integer)):
            return self._rows[i]
        if isinstance(i, slice):
            rows = self._rows[i]
        else:
            idx = np.asarray(i)
            if idx.dtype == bool:
                if idx.shape != (len(self._rows),):
                    raise IndexError(f"Table: a logical row index must have {len(self._rows)} "
                                     f"elements, got {idx.size}")
                idx = np.flatnonzero(idx)
            rows = [self._rows[int(k)] for k in idx.reshape(-1)]
        return Table(self.VariableNames, rows)

    def __setattr__(self, name, value):
        """``t.Value = values`` replaces a column (MATLAB's ``t.Value = ...``)."""
        names = self.__dict__.get("VariableNames")
        if names is None or name.startswith("_") or name == "VariableNames":
            object.__setattr__(self, name, value)
            return
        if name not in names:
            raise AttributeError(f"Table: unrecognized variable '{name}'; variables are: "
                                 f"{', '.join(names)}")
        try:
            values = list(value)
        except TypeError:
            raise TypeError(f"Table: {name} must be a sequence of {len(self._rows)} values "
                            f"(one per row), got {type(value).__name__}") from None
        if len(values) != len(self._rows):
            raise ValueError(f"Table: {name} must have {len(self._rows)} values (one per "
                             f"row), got {len(values)}")
        self._rows = [r._replace(**{name: v}) for r, v in zip(self._rows, values)]

    def __getattr__(self, name):
        # Only called for names that are not attributes; columns are looked up here.
        names = self.__dict__.get("VariableNames", ())
        if name.startswith("_") or name not in names:
            raise AttributeError(f"Table: unrecognized variable '{name}'; variables are: "
                                 f"{', '.join(names)}")
        return _Column(self, name, [getattr(r, name) for r in self._rows])

    @property
    def size(self):
        return (len(self._rows), len(self.VariableNames))

    def __repr__(self):
        """MATLAB's table display: centred headers over underscores, strings in double
        quotes, cells in braces (the layout of a MATLAB table, not byte-exact)."""
        x = _display.times()
        cols = []
        for j, name in enumerate(self.VariableNames):
            cells = [_table_cell(r[j]) for r in self._rows]
            w = max([len(name)] + [len(c) for c in cells])
            cols.append((name.center(w), "_" * w, [c.ljust(w) for c in cells]))
        lines = [f"  {len(self._rows)}{x}{len(self.VariableNames)} table", ""]
        lines.append("    " + "    ".join(c[0] for c in cols))
        lines.append("    " + "    ".join(c[1] for c in cols))
        lines.append("")
        for i in range(len(self._rows)):
            lines.append("    " + "    ".join(c[2][i] for c in cols))
        return "\n".join(lines) + "\n"

    __str__ = __repr__


def _table_cell(v):
    if isinstance(v, str):
        return '"' + v + '"'
    if isinstance(v, dlarray):
        return "{" + _display.format_size(_display.trim_shape(v.shape)) + " dlarray}"
    return _display.format_value(v)
