"""Layer graphs (MATLAB's ``layerGraph``) and the graph functions shared with ``dlnetwork``.

A graph is its layers, in insertion order, and its connections.  A connection joins one
output port of a layer to one input port of another; ports are named as MATLAB names them
(``'add/in2'``, ``'pool/indices'``), the port part only where the layer has several
(MATLAB_SEMANTICS §15).  One implementation (:class:`GraphBase`) holds the graph of both
:class:`LayerGraph` and :class:`mlayers.network.dlnetwork` (R2024a's ``addLayers`` /
``connectLayers`` on a network), so the rules below hold for both:

* MATLAB objects are values: every graph function returns a modified copy and leaves its
  argument unchanged (package default, §15).  The layers given to a graph are copied.
* Automatic names (§15, one implementation for ``layerGraph``, ``dlnetwork`` and
  ``addLayers``): an unnamed layer takes its type's default name (§14.3); when several
  layers would get the same name (or the name is taken) they are numbered in order,
  ``conv_1``, ``conv_2``, skipping names already taken.  Duplicate given names raise.
* Connections are validated as they are made: unknown layer or port, a port omitted on a
  multi-port layer, an input already connected, a duplicate connection, a self-loop, a
  connection from an output layer or into an input layer, and a cycle each raise a
  ``ValueError`` naming the function, the layers and the rule.
* ``Connections`` lists rows by source-layer index, then destination (digraph order).
"""
import copy
import heapq

import numpy as np

from . import _display
from ._options import parse_name_value, validatestring
from ._props import Layer, LayerArray, layer_array, shallow_copy
from ._table import Table

__all__ = ["LayerGraph", "layerGraph", "addLayers", "removeLayers", "replaceLayer",
           "connectLayers", "disconnectLayers", "plot"]

#: default names of layers that do not declare ``_default_name`` (the convolution family:
#: every convolution is 'conv' in MATLAB; the package's earlier names are kept for the
#: variants, §14.3 package defaults)
_DEFAULT_NAMES = {
    "Convolution1DLayer": "conv1d",
    "Convolution2DLayer": "conv",
    "Convolution3DLayer": "conv3d",
    "GroupedConvolution2DLayer": "groupedconv",
    "TransposedConvolution1DLayer": "transposed-conv1d",
    "TransposedConvolution2DLayer": "transposed-conv",
    "TransposedConvolution3DLayer": "transposed-conv3d",
}


# --------------------------------------------------------------------------- helpers

def layer_type(layer):
    """The Type column of a layer (``'2-D Convolution'``)."""
    return layer._layer_array_row()[1]


def default_name(layer):
    name = getattr(layer, "_default_name", None) or _DEFAULT_NAMES.get(type(layer).__name__)
    if name is None:
        name = type(layer).__name__.removesuffix("Layer").lower()
    return name


def clone(layer):
    """A copy of a layer sharing its arrays (layers replace arrays, never mutate them)."""
    c = shallow_copy(layer)
    object.__setattr__(c, "_values", dict(layer._values))
    object.__setattr__(c, "_state", dict(layer._state))
    object.__setattr__(c, "_memo", layer._memo.copy())    # keeps the LRU bound (_cache)
    if hasattr(layer, "_copy_own"):                         # (a custom layer's properties)
        layer._copy_own(c)
    return c


def input_names(layer):
    return layer.InputNames


def assign_names(layers, taken, fname, offset=0):
    """Name the unnamed ``layers`` in place (module docstring rule).

    ``taken``: names already in the graph (a set, updated).  Given names must be unique
    and contain no ``/``.  ``offset``: index of ``layers[0]`` in the caller's numbering.
    """
    given = {}
    for i, layer in enumerate(layers, start=1 + offset):
        name = layer._values["Name"]
        if not name:
            continue
        if "/" in name:
            raise ValueError(f"{fname}: layer names must not contain '/', got '{name}' for "
                             f"layer {i}")
        if name in given:
            raise ValueError(f"{fname}: layer names must be unique, got '{name}' for layers "
                             f"{given[name]} and {i}")
        if name in taken:
            raise ValueError(f"{fname}: layer names must be unique, got '{name}' for layer "
                             f"{i}, the name of a layer already in the graph")
        given[name] = i
    taken.update(given)
    unnamed = [layer for layer in layers if not layer._values["Name"]]
    if not unnamed:
        return
    bases = [default_name(layer) for layer in unnamed]
    counts = {}
    for b in bases:
        counts[b] = counts.get(b, 0) + 1
    numbers = {}
    for layer, base in zip(unnamed, bases):
        if counts[base] == 1 and base not in taken:
            name = base
        else:
            k = numbers.get(base, 0)
            while True:
                k += 1
                name = f"{base}_{k}"
                if name not in taken:
                    break
            numbers[base] = k
        taken.add(name)
        layer._values["Name"] = name


def _cell(names):
    """MATLAB's display of a cellstr row (``{1×0 cell}`` when empty)."""
    if not names:
        return "{1" + _display.times() + "0 cell}"
    return _display.format_value(list(names))


def _as_layers(layers, fname):
    if isinstance(layers, Layer):
        return [layers]
    if isinstance(layers, GraphBase):
        raise TypeError(f"{fname}: layers must be a layer or a layer array, got "
                        f"{type(layers).__name__}")
    try:
        return list(layer_array(layers))
    except TypeError as exc:
        raise TypeError(f"{fname}: {str(exc).split(': ', 1)[1]}") from None


def _names_arg(names, fname, arg="layerNames"):
    if isinstance(names, str):
        return [names]
    try:
        out = list(names)
    except TypeError:
        raise TypeError(f"{fname}: {arg} must be a string or a list of strings, got "
                        f"{type(names).__name__}") from None
    for n in out:
        if not isinstance(n, str):
            raise TypeError(f"{fname}: {arg} must be a string or a list of strings, got "
                            f"an element of type {type(n).__name__}")
    return out


# --------------------------------------------------------------------------- the graph

class GraphBase:
    """Layers (insertion order) and connections ``(source, out port, destination, in
    port)`` by layer name and 0-based port index.  Shared by LayerGraph and dlnetwork."""

    def _graph_init(self, layers=(), connections=()):
        self._layers = LayerArray(layers)
        self._conns = list(connections)
        self._reindex()

    def _reindex(self):
        self._index = {layer._values["Name"]: i for i, layer in enumerate(self._layers)}

    def _copy(self):
        """A copy sharing the layer objects (graph functions replace layers, never mutate
        them in place)."""
        new = copy.copy(self)
        new._layers = LayerArray(self._layers)
        new._conns = list(self._conns)
        new._index = dict(self._index)
        return new

    def _changed(self):
        """Hook: the structure changed (dlnetwork drops its compiled schedule)."""

    # ------------------------------------------------------------- ports

    def _layer(self, name, fname, what="layer"):
        i = self._index.get(name)
        if i is None:
            raise ValueError(f"{fname}: {what} '{name}' is not a layer of the graph")
        return self._layers[i]

    def _endpoint(self, text, source, fname):
        """``'layer'`` or ``'layer/port'`` -> (layer name, port index)."""
        if not isinstance(text, str):
            raise TypeError(f"{fname}: {'s' if source else 'd'} must be a string "
                            f"('layer' or 'layer/port'), got {type(text).__name__}")
        name, sep, port = text.partition("/")
        layer = self._layer(name, fname)
        ports = list(layer.OutputNames if source else input_names(layer))
        kind = "output" if source else "input"
        if not ports:
            what = ("an output layer" if source else "an input layer")
            raise ValueError(f"{fname}: layer '{name}' ({layer_type(layer)}) has no {kind}s "
                             f"({what}); it cannot be the {'source' if source else 'destination'}"
                             f" of a connection, got '{text}'")
        if sep:
            if port not in ports:
                raise ValueError(f"{fname}: layer '{name}' has no {kind} named '{port}'; its "
                                 f"{kind}s are {', '.join(ports)}")
            return name, ports.index(port)
        if len(ports) > 1:
            raise ValueError(f"{fname}: layer '{name}' has several {kind}s "
                             f"({', '.join(ports)}); name one, e.g. '{name}/{ports[0]}'")
        return name, 0

    def _port_text(self, name, port, source):
        layer = self._layers[self._index[name]]
        ports = layer.OutputNames if source else input_names(layer)
        return f"{name}/{ports[port]}" if len(ports) > 1 else name

    # ------------------------------------------------------------- edits (in place)

    def _add_layers(self, layers, fname, chain=True):
        new = [clone(layer) for layer in _as_layers(layers, fname)]
        taken = set(self._index)
        assign_names(new, taken, fname, offset=len(self._layers))
        start = len(self._layers)
        self._layers.extend(new)
        for k, layer in enumerate(new, start=start):
            self._index[layer._values["Name"]] = k
        if chain:
            for a, b in zip(new[:-1], new[1:]):
                self._connect_chain(a, b, fname)
        self._changed()
        return new

    def _connect_chain(self, a, b, fname):
        outs, ins = a.OutputNames, input_names(b)
        if not outs:
            raise ValueError(f"{fname}: layer '{a.Name}' ({layer_type(a)}) is an output layer; "
                             f"in a layer array output layers may only be the last layer")
        if not ins:
            raise ValueError(f"{fname}: layer '{b.Name}' ({layer_type(b)}) is an input layer; "
                             f"in a layer array an input layer must be the first layer")
        # MATLAB chains the first output to the first input of the next layer.
        self._conns.append((a._values["Name"], 0, b._values["Name"], 0))

    def _connect(self, s, d, fname):
        src, sp = self._endpoint(s, True, fname)
        dst, dp = self._endpoint(d, False, fname)
        if src == dst:
            raise ValueError(f"{fname}: a layer cannot be connected to itself, got '{s}' "
                             f"to '{d}'")
        for c in self._conns:
            if c[2] == dst and c[3] == dp:
                what = ("the connection already exists" if c[:2] == (src, sp) else
                        f"it is already connected to '{self._port_text(c[0], c[1], True)}'")
                raise ValueError(f"{fname}: cannot connect '{s}' to input "
                                 f"'{self._port_text(dst, dp, False)}': {what}")
        # A cycle: the destination already reaches the source.
        succ = {}
        for c in self._conns:
            succ.setdefault(c[0], []).append(c[2])
        stack, seen = [dst], {dst}
        while stack:
            n = stack.pop()
            if n == src:
                raise ValueError(f"{fname}: connecting '{s}' to '{d}' would create a cycle "
                                 f"('{dst}' already feeds '{src}'); layer graphs must be "
                                 f"acyclic")
            for m in succ.get(n, ()):
                if m not in seen:
                    seen.add(m)
                    stack.append(m)
        self._conns.append((src, sp, dst, dp))
        self._changed()

    def _disconnect(self, s, d, fname):
        src, sp = self._endpoint(s, True, fname)
        dst, dp = self._endpoint(d, False, fname)
        try:
            self._conns.remove((src, sp, dst, dp))
        except ValueError:
            raise ValueError(f"{fname}: there is no connection from '{s}' to '{d}'") from None
        self._changed()

    def _remove(self, names, fname):
        names = _names_arg(names, fname)
        for n in names:
            self._layer(n, fname)
        gone = set(names)
        self._layers = LayerArray(layer for layer in self._layers
                                  if layer._values["Name"] not in gone)
        self._conns = [c for c in self._conns if c[0] not in gone and c[2] not in gone]
        self._reindex()
        self._changed()

    def _replace(self, name, layers, reconnect, fname):
        old = self._layer(name, fname, "layerName")
        new = [clone(layer) for layer in _as_layers(layers, fname)]
        if not new:
            raise ValueError(f"{fname}: larray must contain at least one layer")
        taken = set(self._index) - {name}
        assign_names(new, taken, fname)
        first, last = new[0], new[-1]
        old_ins, old_outs = input_names(old), old.OutputNames
        new_ins, new_outs = input_names(first), last.OutputNames

        def port_map(old_ports, new_ports):
            out = {}
            for k, p in enumerate(old_ports):
                if reconnect == "order":
                    if k < len(new_ports):
                        out[k] = k
                elif p in new_ports:
                    out[k] = list(new_ports).index(p)
            return out

        in_map = port_map(old_ins, new_ins)
        out_map = port_map(old_outs, new_outs)
        conns = []
        for c in self._conns:
            if c[2] == name:
                if c[3] not in in_map:
                    raise ValueError(
                        f"{fname}: cannot reconnect input '{old_ins[c[3]]}' of '{name}' by "
                        f"{reconnect}: layer '{first.Name}' has inputs "
                        f"{', '.join(new_ins) or '(none)'}")
                conns.append((c[0], c[1], first._values["Name"], in_map[c[3]]))
            elif c[0] == name:
                if c[1] not in out_map:
                    raise ValueError(
                        f"{fname}: cannot reconnect output '{old_outs[c[1]]}' of '{name}' "
                        f"by {reconnect}: layer '{last.Name}' has outputs "
                        f"{', '.join(new_outs) or '(none)'}")
                conns.append((last._values["Name"], out_map[c[1]], c[2], c[3]))
            else:
                conns.append(c)
        pos = self._index[name]
        self._layers = LayerArray(list(self._layers[:pos]) + new + list(self._layers[pos + 1:]))
        self._conns = conns
        for a, b in zip(new[:-1], new[1:]):
            self._connect_chain(a, b, fname)
        self._reindex()
        self._changed()

    # ------------------------------------------------------------- queries

    def _in_edges(self):
        """{(destination, in port): (source, out port)}."""
        return {(c[2], c[3]): (c[0], c[1]) for c in self._conns}

    def _connections_table(self):
        idx = self._index
        rows = sorted(self._conns, key=lambda c: (idx[c[0]], c[1], idx[c[2]], c[3]))
        return Table(("Source", "Destination"),
                     [(self._port_text(c[0], c[1], True), self._port_text(c[2], c[3], False))
                      for c in rows])

    def _free_inputs(self):
        """Unconnected input ports of layers that have inputs, in layer order."""
        connected = {(c[2], c[3]) for c in self._conns}
        out = []
        for layer in self._layers:
            name = layer._values["Name"]
            for k in range(len(input_names(layer))):
                if (name, k) not in connected:
                    out.append((name, k))
        return out

    def _free_outputs(self):
        connected = {(c[0], c[1]) for c in self._conns}
        out = []
        for layer in self._layers:
            name = layer._values["Name"]
            for k in range(len(layer.OutputNames)):
                if (name, k) not in connected:
                    out.append((name, k))
        return out

    def _topological_order(self, fname):
        """Stable topological order of the insertion order (§15): at each step the
        earliest-inserted layer whose sources are all placed."""
        n = len(self._layers)
        idx = self._index
        indeg = [0] * n
        succ = [[] for _ in range(n)]
        for c in self._conns:
            a, b = idx[c[0]], idx[c[2]]
            succ[a].append(b)
            indeg[b] += 1
        heap = [i for i in range(n) if indeg[i] == 0]
        heapq.heapify(heap)
        order = []
        while heap:
            i = heapq.heappop(heap)
            order.append(i)
            for j in succ[i]:
                indeg[j] -= 1
                if indeg[j] == 0:
                    heapq.heappush(heap, j)
        if len(order) < n:
            left = [self._layers[i]._values["Name"] for i in range(n) if indeg[i] > 0]
            raise ValueError(f"{fname}: the layer graph must not contain cycles; layers "
                             f"on or after a cycle: {', '.join(left)}")
        return order


class LayerGraph(GraphBase):
    """A graph of layers (MATLAB's ``LayerGraph``); see :func:`layerGraph`.

    Attributes
    ----------
    Layers : LayerArray
        The layers in insertion order.
    Connections : Table
        ``Source``, ``Destination`` (``'layer'`` or ``'layer/port'``).
    InputNames, OutputNames : list of str
        Names of the input layers and of the output layers.
    """

    def __init__(self, layers=(), connections=()):
        self._graph_init(layers, connections)

    @property
    def Layers(self):
        return self._layers

    @property
    def Connections(self):
        return self._connections_table()

    @property
    def InputNames(self):
        return [layer.Name for layer in self._layers if not input_names(layer)]

    @property
    def OutputNames(self):
        return [layer.Name for layer in self._layers if not layer.OutputNames]

    def __repr__(self):
        """MATLAB's ``disp(lgraph)`` (§15)."""
        x = _display.times()
        rows = [("Layers", f"[{len(self._layers)}{x}1 nnet.cnn.layer.Layer]"),
                ("Connections", f"[{len(self._conns)}{x}2 table]"),
                ("InputNames", _cell(self.InputNames)),
                ("OutputNames", _cell(self.OutputNames))]
        w = max(len(k) for k, _ in rows)
        lines = ["  LayerGraph with properties:", ""]
        lines += [" " * (4 + w - len(k)) + k + ": " + v for k, v in rows]
        return "\n".join(lines) + "\n"

    __str__ = __repr__

    def display(self, name="lgraph"):
        """Print MATLAB's ``name = `` display."""
        print(_display.named(name, repr(self)), end="")


# --------------------------------------------------------------------------- functions

def layerGraph(layers=None):
    """Graph of network layers (MATLAB's ``layerGraph``).

    ``layerGraph()`` is empty; ``layerGraph(layers)`` adds a layer array connected in
    array order; ``layerGraph(net)`` takes the layers and connections of a ``dlnetwork``.

    Examples
    --------
    MATLAB::

        lgraph = layerGraph([imageInputLayer([8 8 1]); convolution2dLayer(3,4,'Name','c')
                             reluLayer('Name','r'); additionLayer(2,'Name','add')]);
        lgraph = connectLayers(lgraph, 'c', 'add/in2');

    Python::

        >>> lgraph = ml.layerGraph([ml.imageInputLayer([8, 8, 1]),
        ...                         ml.convolution2dLayer(3, 4, Name="c"),
        ...                         ml.reluLayer(Name="r"), ml.additionLayer(2, Name="add")])
        >>> lgraph = ml.connectLayers(lgraph, "c", "add/in2")
    """
    fname = "layerGraph"
    g = LayerGraph()
    if layers is None:
        return g
    if isinstance(layers, GraphBase):
        g._layers = LayerArray(clone(layer) for layer in layers._layers)
        g._conns = list(layers._conns)
        g._reindex()
        return g
    g._add_layers(layers, fname)
    return g


def _graph_arg(g, fname):
    if not isinstance(g, GraphBase):
        raise TypeError(f"{fname}: the first argument must be a layer graph or a dlnetwork, "
                        f"got {type(g).__name__}")
    return g._copy()


def addLayers(g, layers):
    """Add layers to a graph or network, connected in array order among themselves only
    (MATLAB's ``lgraph = addLayers(lgraph, larray)``); returns the new graph."""
    g = _graph_arg(g, "addLayers")
    g._add_layers(layers, "addLayers")
    return g


def removeLayers(g, layerNames):
    """Remove layers and their connections (MATLAB's ``removeLayers``)."""
    g = _graph_arg(g, "removeLayers")
    g._remove(layerNames, "removeLayers")
    return g


def replaceLayer(g, layerName, larray, *args, **kwargs):
    """Replace a layer by a layer array connected in order (MATLAB's ``replaceLayer``).

    ``ReconnectBy="name"`` (default) reconnects each input and output of the old layer to
    the port of the same name of the first (inputs) or last (outputs) new layer;
    ``"order"`` to the port of the same position.
    """
    fname = "replaceLayer"
    g = _graph_arg(g, fname)
    opts = parse_name_value(fname, args, kwargs, ("ReconnectBy",))
    mode = validatestring(opts.get("ReconnectBy", "name"), ("name", "order"), fname,
                          "ReconnectBy")
    if not isinstance(layerName, str):
        raise TypeError(f"{fname}: layerName must be a string, got {type(layerName).__name__}")
    g._replace(layerName, larray, mode, fname)
    return g


def connectLayers(g, s, d):
    """Connect output ``s`` to input ``d`` (MATLAB's ``connectLayers``; ``'add/in2'``)."""
    g = _graph_arg(g, "connectLayers")
    g._connect(s, d, "connectLayers")
    return g


def disconnectLayers(g, s, d):
    """Remove the connection from ``s`` to ``d`` (MATLAB's ``disconnectLayers``)."""
    g = _graph_arg(g, "disconnectLayers")
    g._disconnect(s, d, "disconnectLayers")
    return g


# --------------------------------------------------------------------------- plot

def _layout(g):
    """(x, y) per layer: layers in levels top to bottom (longest path from a source),
    ordered within a level by the mean position of their sources (one barycentre sweep,
    as a layered digraph drawing does)."""
    idx = g._index
    n = len(g._layers)
    preds = [[] for _ in range(n)]
    for c in g._conns:
        preds[idx[c[2]]].append(idx[c[0]])
    order = g._topological_order("plot")
    level = [0] * n
    for i in order:
        if preds[i]:
            level[i] = 1 + max(level[p] for p in preds[i])
    rows = {}
    for i in order:
        rows.setdefault(level[i], []).append(i)
    x = [0.0] * n
    for lv in sorted(rows):
        members = rows[lv]
        if lv > 0:
            members.sort(key=lambda i: (sum(x[p] for p in preds[i]) / len(preds[i])
                                        if preds[i] else 0.0))
        k = len(members)
        for j, i in enumerate(members):
            x[i] = j - (k - 1) / 2
        # keep a single child under its parent
        if k == 1 and preds[members[0]]:
            x[members[0]] = sum(x[p] for p in preds[members[0]]) / len(preds[members[0]])
    return [(x[i], -level[i]) for i in range(n)], preds


def plot(g, ax=None):
    """Draw a layer graph or network (MATLAB's ``plot(lgraph)``): a top-to-bottom layered
    digraph labelled with the layer names.  Returns the matplotlib Figure.

    Examples
    --------
    >>> fig = ml.plot(lgraph)
    >>> fig.savefig("lgraph.png")
    """
    if not isinstance(g, GraphBase):
        raise TypeError(f"plot: the argument must be a layer graph or a dlnetwork, got "
                        f"{type(g).__name__}")
    import matplotlib
    own = ax is None
    if own:
        import matplotlib.figure
        fig = matplotlib.figure.Figure()
        ax = fig.add_subplot(1, 1, 1)
    else:
        fig = ax.figure
    pos, preds = _layout(g)
    n = len(pos)
    if n:
        xs = [p[0] for p in pos]
        depth = -min(p[1] for p in pos) + 1
        width = max(xs) - min(xs) + 1
        if own:
            w_in, h_in = max(4.0, 2.2 * width + 2.0), max(3.0, 0.45 * depth + 1.0)
            fig.set_size_inches(w_in, h_in)
            mx, my = 0.2 / w_in, 0.3 / h_in          # fixed margins, whatever the height
            ax.set_position([mx, my, 1 - 2 * mx, 1 - 2 * my])
    edges = [(p, i) for i, ps in enumerate(preds) for p in ps]
    if len(edges) <= 200:
        for p, i in edges:
            span = pos[p][1] - pos[i][1]
            # an edge skipping levels in one column would hide behind the chain: an arc
            rad = 0.0 if span <= 1 or abs(pos[p][0] - pos[i][0]) > 1e-9 else 1.1 / span
            ax.annotate("", xy=pos[i], xytext=pos[p],
                        arrowprops=dict(arrowstyle="-|>", color="0.45", lw=1.0,
                                        shrinkA=4, shrinkB=4,
                                        connectionstyle=f"arc3,rad={rad:.4f}"))
    else:
        # large graphs: one line collection (arcs as sampled curves), arrowheads as markers
        from matplotlib.collections import LineCollection
        lines, heads = [], []
        t = np.linspace(0.0, 1.0, 16)[:, None]
        for p, i in edges:
            a, b = np.array(pos[p]), np.array(pos[i])
            span = a[1] - b[1]
            if span > 1 and abs(a[0] - b[0]) < 1e-9:
                c = (a + b) / 2 - np.array([0.35, 0.0])
                pts = (1 - t) ** 2 * a + 2 * (1 - t) * t * c + t ** 2 * b
            else:
                pts = np.vstack([a, b])
            lines.append(pts)
            d = pts[-1] - pts[-2]
            heads.append(pts[-1] - 0.22 * d / max(np.hypot(*d), 1e-12))
        ax.add_collection(LineCollection(lines, colors="0.45", linewidths=1.0))
        if heads:
            h = np.array(heads)
            ax.plot(h[:, 0], h[:, 1], "v", color="0.45", markersize=3)
    if n:
        ax.plot([p[0] for p in pos], [p[1] for p in pos], "o", color="#0072BD",
                markersize=5, zorder=3)
    fontsize = 8 if n < 60 else 6
    for layer, (x, y) in zip(g._layers, pos):
        ax.text(x + 0.06, y, layer.Name, fontsize=fontsize, va="center", ha="left",
                zorder=4)
    ax.set_axis_off()
    if n:
        xs = [p[0] for p in pos]
        ax.set_xlim(min(xs) - 0.5, max(xs) + 1.2)
        ax.set_ylim(min(p[1] for p in pos) - 0.5, 0.5)
    del matplotlib
    return fig
