"""What a user watches while training: MATLAB's verbose table and training-progress plot.

Both observe the training loop through :class:`Report` records (one per iteration);
neither changes it (STYLE Part 2 §5).

Verbose table (MATLAB_SEMANTICS §16.7): header words wrap at 14 characters, lines are
centred (an odd space goes right), a column is its first header line + 4 wide, borders
are ``|`` + ``=``·(width − 2) + ``|``; a row is ``| `` + cells joined by `` | `` + `` |``
with each cell 2 narrower than its column: Epoch ``%7d``, Iteration ``%11d``, Time
``%14s`` (hh:mm:ss, truncated to seconds), Accuracy ``%11.2f%%``, Loss ``%12.4f``, rate
``%15.4f``.  Rates below 1e-4 (single(1e-4) too) print ``%.4e``; losses and RMSEs of 1e6
or more, or too small for the fixed format, print ``%.4e``.  Regression shows
``Mini-batch RMSE`` (``.2f``) and ``Mini-batch Loss`` (``.1f``; ``.4f`` with validation).

trainnet's table (§16.9): 4-space indent, right-aligned values under headers with ``_``
underlines, short-g numbers (5 significant digits).
"""
import os
import tempfile

import numpy as np

__all__ = []

_WRAP = 14


def _wrap(title):
    words, lines, cur = title.split(), [], ""
    for w in words:
        if cur and len(cur) + 1 + len(w) > _WRAP:
            lines.append(cur)
            cur = w
        else:
            cur = f"{cur} {w}" if cur else w
    lines.append(cur)
    return lines


def _center(text, width):
    left = (width - len(text)) // 2
    return " " * left + text + " " * (width - len(text) - left)


def hms(seconds):
    s = int(seconds)
    return f"{s // 3600:02d}:{s % 3600 // 60:02d}:{s % 60:02d}"


def _fixed_or_e(value, width, decimals):
    if value is None:
        return " " * width
    v = float(value)
    if np.isnan(v):
        return "NaN".rjust(width)
    if np.isinf(v):
        return ("Inf" if v > 0 else "-Inf").rjust(width)
    if v != 0 and (abs(v) >= 1e6 or abs(v) < 10.0 ** -decimals):
        return f"{v:{width}.4e}"
    return f"{v:{width}.{decimals}f}"


class VerboseTable:
    """MATLAB's trainNetwork console table.

    ``kind`` is ``"classification"`` or ``"regression"``; ``validation`` adds the
    validation columns.  ``header()``, ``row(...)``, ``footer()`` return text lines."""

    def __init__(self, kind="classification", validation=False):
        self.kind = kind
        self.validation = validation
        metric = "Accuracy" if kind == "classification" else "RMSE"
        cols = [("Epoch", "epoch"), ("Iteration", "iteration"),
                ("Time Elapsed (hh:mm:ss)", "time"), (f"Mini-batch {metric}", "metric")]
        if validation:
            cols.append((f"Validation {metric}", "val_metric"))
        cols.append(("Mini-batch Loss", "loss"))
        if validation:
            cols.append(("Validation Loss", "val_loss"))
        cols.append(("Base Learning Rate", "rate"))
        self.cols = []
        for title, key in cols:
            lines = _wrap(title)
            self.cols.append((lines, key, len(lines[0]) + 4))

    @property
    def width(self):
        return sum(w for _, _, w in self.cols) + len(self.cols) + 1

    def border(self):
        return "|" + "=" * (self.width - 2) + "|"

    def header(self):
        nlines = max(len(lines) for lines, _, _ in self.cols)
        out = [self.border()]
        for i in range(nlines):
            out.append("|" + "|".join(_center(lines[i] if i < len(lines) else "", w)
                                      for lines, _, w in self.cols) + "|")
        out.append(self.border())
        return out

    def _cell(self, key, value, width):
        if key in ("epoch", "iteration"):
            return f"{int(value):{width}d}"
        if key == "time":
            return f"{hms(value):>{width}}"
        if value is None:
            return " " * width
        if key in ("metric", "val_metric"):
            if self.kind == "classification":
                if np.isnan(value):
                    return "NaN".rjust(width - 1) + "%"
                return f"{float(value):{width - 1}.2f}%"
            return _fixed_or_e(value, width, 2)
        if key in ("loss", "val_loss"):
            decimals = 1 if (self.kind == "regression" and not self.validation) else 4
            return _fixed_or_e(value, width, decimals)
        if key == "rate":
            v = float(value)
            if v != 0 and abs(v) < 1e-4:
                return f"{v:{width}.4e}"
            return f"{v:{width}.4f}"
        raise KeyError(key)

    def row(self, **values):
        cells = [self._cell(key, values.get(key), w - 2) for _, key, w in self.cols]
        return "| " + " | ".join(cells) + " |"

    def footer(self):
        return [self.border()]


def _short_g(v):
    """MATLAB's table display of a double: 5 significant digits (``%.5g``)."""
    if v is None:
        return ""
    v = float(v)
    if np.isnan(v):
        return "NaN"
    if v == int(v) and abs(v) < 1e10:
        return str(int(v))
    return f"{v:.5g}"


class TrainnetTable:
    """trainnet's (E4) console table: ``Iteration Epoch TimeElapsed LearnRate TrainingLoss
    [ValidationLoss] [metrics...]``, right-aligned under headers, ``_`` underlines."""

    def __init__(self, validation=False, metrics=()):
        names = ["Iteration", "Epoch", "TimeElapsed", "LearnRate", "TrainingLoss"]
        if validation:
            names.append("ValidationLoss")
        for m in metrics:
            names.append("Training" + m)
            if validation:
                names.append("Validation" + m)
        self.names = names

    def header(self):
        return ["    " + "    ".join(self.names),
                "    " + "    ".join("_" * len(n) for n in self.names)]

    def row(self, **values):
        cells = []
        for n in self.names:
            v = values.get(n)
            if n == "TimeElapsed":
                text = hms(v)
            elif n in ("Iteration", "Epoch"):
                text = str(int(v))
            else:
                text = _short_g(v)
            cells.append(text.rjust(len(n)))
        return "    " + "    ".join(cells)


# --------------------------------------------------------------------------- plot

def _smooth(y, window=15):
    """Local linear fit over the last ``window`` points (MATLAB's smoothed curve)."""
    y = np.asarray(y, dtype=float)
    out = np.empty_like(y)
    for i in range(len(y)):
        lo = max(0, i - window + 1)
        seg = y[lo:i + 1]
        ok = np.isfinite(seg)
        if ok.sum() < 2:
            out[i] = y[i]
            continue
        x = np.arange(lo, i + 1)[ok]
        a, b = np.polyfit(x, seg[ok], 1)
        out[i] = a * i + b
    return out


class ProgressPlot:
    """MATLAB's training-progress figure in matplotlib: accuracy (or RMSE) and loss against
    iteration; raw curves (alpha 0.2), smoothed curves, dashed validation with markers,
    line width 1.3, shaded epoch bands; an info text.

    Live when a GUI backend is active; otherwise the figure is saved when training ends
    and its path printed (``path``)."""

    def __init__(self, kind, iters_per_epoch, max_epochs, path=None):
        import matplotlib
        self.kind = kind
        self.ipe = max(int(iters_per_epoch), 1)
        self.max_epochs = max_epochs
        backend = matplotlib.get_backend().lower()
        self.live = not any(b in backend for b in ("agg", "pdf", "svg", "ps", "cairo",
                                                   "template", "inline"))
        self.path = path
        self.it, self.metric, self.loss = [], [], []
        self.vit, self.vmetric, self.vloss = [], [], []
        self.fig = None
        self.rate = None
        self.start_text = ""

    def _figure(self):
        import matplotlib.pyplot as plt
        if self.fig is None:
            self.fig, (self.ax1, self.ax2) = plt.subplots(
                2, 1, figsize=(9, 6.5), sharex=True, gridspec_kw={"height_ratios": [1, 1]})
            self.fig.suptitle("Training Progress")
        return self.fig

    def update(self, iteration, metric, loss, val_metric=None, val_loss=None, rate=None):
        self.it.append(iteration)
        self.metric.append(np.nan if metric is None else metric)
        self.loss.append(np.nan if loss is None else loss)
        if val_loss is not None:
            self.vit.append(iteration)
            self.vmetric.append(val_metric)
            self.vloss.append(val_loss)
        self.rate = rate
        if self.live and (iteration == 1 or iteration % 10 == 0):
            self.draw()
            import matplotlib.pyplot as plt
            plt.pause(0.001)

    def draw(self, final_text=""):
        fig = self._figure()
        ax1, ax2 = self.ax1, self.ax2
        ax1.clear()
        ax2.clear()
        it = np.asarray(self.it)
        blue, orange, black = "#0072BD", "#D95319", "k"
        top_label = "Accuracy (%)" if self.kind == "classification" else "RMSE"
        for ax, raw, val, label, color in ((ax1, self.metric, self.vmetric, top_label, blue),
                                           (ax2, self.loss, self.vloss, "Loss", orange)):
            n_epochs = int(np.ceil(len(it) / self.ipe)) if len(it) else 1
            for e in range(n_epochs):
                if e % 2 == 1:
                    ax.axvspan(e * self.ipe + 0.5, (e + 1) * self.ipe + 0.5,
                               color="0.93", zorder=0)
            if len(it):
                ax.plot(it, raw, color=color, alpha=0.2, linewidth=1.3)
                ax.plot(it, _smooth(raw), color=color, linewidth=1.3,
                        label=f"Training (smoothed)")
            if self.vit:
                ax.plot(self.vit, val, "--o", color=black, linewidth=1.3, markersize=4,
                        markerfacecolor=black, label="Validation")
            ax.set_ylabel(label)
            ax.grid(True, alpha=0.3)
        if self.kind == "classification":
            ax1.set_ylim(0, 100)
        ax2.set_xlabel("Iteration")
        ax1.legend(loc="lower right", fontsize=8)
        info = f"Epoch {int(np.ceil(len(it) / self.ipe)) if len(it) else 0} of " \
               f"{self.max_epochs}; iteration {it[-1] if len(it) else 0}; " \
               f"learning rate {self.rate if self.rate is not None else ''}"
        if final_text:
            info += f"\n{final_text}"
        ax1.set_title(info, fontsize=9, loc="left")
        if self.live:
            fig.canvas.draw_idle()
        return fig

    def finish(self, final_text=""):
        fig = self.draw(final_text)
        if self.live:
            return None
        path = self.path
        if path is None:
            fd, path = tempfile.mkstemp(prefix="training-progress-", suffix=".png")
            os.close(fd)
        fig.savefig(path, dpi=100)
        import matplotlib.pyplot as plt
        plt.close(fig)
        self.path = path
        return path
