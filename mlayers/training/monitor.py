"""MATLAB's ``trainingProgressMonitor`` (R2022b) for custom training loops, without the
window: the metrics and information a loop records are kept (``MetricData``,
``InfoData``) so MathWorks' current custom-loop examples run as written::

    monitor = trainingProgressMonitor(Metrics="Loss", Info="Epoch", XLabel="Iteration");
    while epoch < numEpochs && ~monitor.Stop
        ...
        recordMetrics(monitor, iteration, Loss=loss);
        updateInfo(monitor, Epoch=epoch + " of " + numEpochs);
        monitor.Progress = 100 * iteration / numIterations;
    end

    monitor = ml.trainingProgressMonitor(Metrics="Loss", Info="Epoch", XLabel="Iteration")
    while epoch < numEpochs and not monitor.Stop:
        ...
        ml.recordMetrics(monitor, iteration, Loss=loss)
        ml.updateInfo(monitor, Epoch=f"{epoch} of {numEpochs}")
        monitor.Progress = 100 * iteration / numIterations

``Stop`` is MATLAB's Stop button: no window here, so it stays false unless the loop sets
it (``monitor.Stop = True``).  ``monitor.plot()`` draws the recorded metrics with
matplotlib (optional dependency).
"""
import numbers
import time

import numpy as np

from .._options import parse_name_value
from ..dlarray import dlarray

__all__ = ["trainingProgressMonitor", "recordMetrics", "updateInfo", "groupSubPlot",
           "yscale"]

_PROPERTIES = ("Metrics", "Info", "Visible", "Progress", "Status", "XLabel")


def _names(value, fname, what):
    names = [value] if isinstance(value, str) else list(value)
    if not all(isinstance(n, str) and n.isidentifier() for n in names):
        raise ValueError(f"{fname}: {what} must be names that begin with a letter (letters, "
                         f"digits, underscores), got {value!r}")
    return names


class trainingProgressMonitor:  # noqa: N801  (MATLAB's function and class name)
    """A TrainingProgressMonitor: ``Metrics``, ``Info``, ``XLabel``, ``Status``,
    ``Progress`` (0-100), ``Visible`` (accepted; no window), ``Stop``, and the recorded
    ``MetricData`` (metric -> N x 2 array of [step, value]) and ``InfoData`` (info ->
    list of values), ``Start`` (seconds since the epoch) and ``ElapsedTime`` (s)."""

    def __init__(self, *args, **kwargs):
        opts = parse_name_value("trainingProgressMonitor", args, kwargs, _PROPERTIES)
        self.Metrics = _names(opts.get("Metrics", []), "trainingProgressMonitor", "Metrics")
        self.Info = _names(opts.get("Info", []), "trainingProgressMonitor", "Info")
        self.XLabel = str(opts.get("XLabel", ""))
        self.Status = str(opts.get("Status", ""))
        self.Visible = bool(opts.get("Visible", True))
        self.Progress = 0.0
        if "Progress" in opts:
            self.Progress = opts["Progress"]
        self.Stop = False
        self.MetricData = {}
        self.InfoData = {}
        self.Start = time.time()
        self._groups, self._scales = {}, {}

    @property
    def ElapsedTime(self):
        return time.time() - self.Start

    def __setattr__(self, name, value):
        if name == "Progress":
            if not isinstance(value, numbers.Real) or isinstance(value, bool) or \
                    not 0 <= value <= 100:
                raise ValueError(f"trainingProgressMonitor: Progress must be a number from "
                                 f"0 to 100, got {value!r}")
            value = float(value)
        object.__setattr__(self, name, value)

    def __repr__(self):
        rows = [("Metrics", "[" + " ".join(f'"{m}"' for m in self.Metrics) + "]"),
                ("Info", "[" + " ".join(f'"{i}"' for i in self.Info) + "]"),
                ("XLabel", f'"{self.XLabel}"'), ("Status", f'"{self.Status}"'),
                ("Progress", f"{self.Progress:g}"), ("Stop", str(int(self.Stop))),
                ("Visible", str(int(self.Visible)))]
        width = max(len(n) for n, _ in rows)
        return ("  TrainingProgressMonitor with properties:\n\n"
                + "\n".join(f"    {n.rjust(width)}: {v}" for n, v in rows) + "\n")

    def plot(self):
        """The recorded metrics in a matplotlib figure (one subplot per group or metric)."""
        import matplotlib.pyplot as plt
        grouped = [m for g in self._groups.values() for m in g]
        panels = list(self._groups.items()) + [(m, [m]) for m in self.Metrics
                                               if m not in grouped]
        fig, axes = plt.subplots(len(panels) or 1, 1, squeeze=False,
                                 figsize=(6, 2.5 * max(len(panels), 1)))
        for ax, (title, names) in zip(axes[:, 0], panels):
            for m in names:
                d = self.MetricData.get(m)
                if d is not None and len(d):
                    ax.plot(d[:, 0], d[:, 1], label=m)
            ax.set_title(title)
            ax.set_xlabel(self.XLabel)
            ax.set_yscale(self._scales.get(title, "linear"))
            if len(names) > 1:
                ax.legend()
        fig.tight_layout()
        return fig


def _check_monitor(monitor, fname):
    if not isinstance(monitor, trainingProgressMonitor):
        raise TypeError(f"{fname}: monitor must be a trainingProgressMonitor, got "
                        f"{type(monitor).__name__}")


def _values(fname, args, kwargs):
    if args:
        if len(args) == 1 and isinstance(args[0], dict):
            return {**args[0], **kwargs}          # the structure form
        raise TypeError(f"{fname}: values are given as Name=value or one dict (MATLAB's "
                        f"structure), got {len(args)} more positional argument(s)")
    return kwargs


def recordMetrics(monitor, step, *args, **kwargs):
    """``recordMetrics(monitor, step, Loss=loss, ...)`` (or one dict): appends
    ``[step, value]`` to ``monitor.MetricData[name]`` for metrics named in
    ``monitor.Metrics`` (a dlarray value is read as its number)."""
    fname = "recordMetrics"
    _check_monitor(monitor, fname)
    if isinstance(step, bool) or not isinstance(step, numbers.Real):
        raise TypeError(f"{fname}: step must be a real number, got {type(step).__name__}")
    for name, value in _values(fname, args, kwargs).items():
        if name not in monitor.Metrics:
            raise ValueError(f"{fname}: {name!r} is not a metric of the monitor "
                             f"({', '.join(monitor.Metrics) or 'none'}); set "
                             f"monitor.Metrics first")
        v = float(value) if isinstance(value, dlarray) else float(np.asarray(value).reshape(()))
        row = np.array([[float(step), v]])
        old = monitor.MetricData.get(name)
        monitor.MetricData[name] = row if old is None else np.vstack([old, row])


def updateInfo(monitor, *args, **kwargs):
    """``updateInfo(monitor, Epoch=..., ...)`` (or one dict): appends each value to
    ``monitor.InfoData[name]`` for information named in ``monitor.Info``."""
    fname = "updateInfo"
    _check_monitor(monitor, fname)
    for name, value in _values(fname, args, kwargs).items():
        if name not in monitor.Info:
            raise ValueError(f"{fname}: {name!r} is not an information field of the "
                             f"monitor ({', '.join(monitor.Info) or 'none'}); set "
                             f"monitor.Info first")
        monitor.InfoData.setdefault(name, []).append(value)


def groupSubPlot(monitor, groupName, metricNames):
    """``groupSubPlot(monitor, "Loss", ["TrainingLoss", "ValidationLoss"])``: one subplot
    for these metrics in ``monitor.plot()``."""
    _check_monitor(monitor, "groupSubPlot")
    names = _names(metricNames, "groupSubPlot", "metricNames")
    unknown = [m for m in names if m not in monitor.Metrics]
    if unknown:
        raise ValueError(f"groupSubPlot: {unknown[0]!r} is not a metric of the monitor "
                         f"({', '.join(monitor.Metrics) or 'none'})")
    monitor._groups[str(groupName)] = names


def yscale(monitor, names, scale):
    """``yscale(monitor, "Loss", "log")``: the y-axis scale of subplots in ``plot()``."""
    _check_monitor(monitor, "yscale")
    if scale not in ("linear", "log"):
        raise ValueError(f"yscale: scale must be 'linear' or 'log', got {scale!r}")
    for n in ([names] if isinstance(names, str) else names):
        monitor._scales[str(n)] = scale
