"""Switchable package defaults for the facts MATLAB_SEMANTICS.md marks as inferred.

MATLAB's behaviour is unknown (or release-dependent) for a few details that change text
or numbers.  The package picks one default for each and keeps the alternative one switch
away, so a user holding MATLAB output from another release can match it.

``ml.package_defaults()`` returns the current values; ``ml.package_defaults(name=value)``
sets them, and used as a context manager restores the old values on exit::

    with ml.package_defaults(times="x", type_names="legacy"):
        print(layer)
"""

_DEFAULTS = {
    # The dimension separator in displays and messages: R2021b+ prints "×", older "x".
    "times": "×",
    # Layer-array type column: "current" ("2-D Convolution") or "legacy" ("Convolution").
    "type_names": "current",
    # Transposed 'same' with an odd crop: "end" (decided, SAME_UPPER) or "start".
    "same_crop_extra": "end",
    # Fan-in of 'he' for transposed convolutions: "channels" (prod(F)*NumChannels,
    # decided) or "filters" (prod(F)*NumFilters).
    "transposed_he_fan_in": "channels",
    # Variance that batchnorm returns and averages into running statistics: "biased"
    # (divided by the element count, as the normalization itself; inferred) or "unbiased".
    "batchnorm_variance": "biased",
    # A layer given zero observations (B of size 0): "empty" (inferred from MATLAB's
    # empty-array rules: an output of the right size with 0 observations) or "error".
    "empty_batch": "empty",
    # Dropout masks (MATLAB_SEMANTICS §14.2): MATLAB's double rand values compared in
    # single precision ("single", package default: rounded to single, kept where
    # > single(p)) or in double ("double").
    "dropout_mask": "single",
    # predict folds a batchNormalizationLayer into the convolution before it (weights and
    # bias scaled once per network and parameter values): True (package default; equal
    # to the unfolded path up to float round-off) or False (layer by layer).
    "network_fold_batchnorm": True,
    # predict runs a chain of layers whose kernels can run without Python between them
    # (convolutions, pooling, fully connected, softmax: dlnetwork._bind) as one call of
    # compiled code: True (package default; the same kernels with the same arguments, so
    # the same bits) or False (a Python call per layer).
    "network_compile": True,
    # What padded cells hold in max pooling: "-realmax" of the data's class (MathWorks
    # codegen source, MATLAB_SEMANTICS §11.2: a padded window of -Inf real cells gives
    # -realmax) or "-Inf" (padded cells never win).
    "maxpool_padding": "-realmax",
    # The precision of a functional operation on single and double operands (dlconv of
    # single data with double weights...): "double", the computation in the wider type
    # (package default, MATLAB_SEMANTICS §9.6: np.result_type), or "single", MATLAB's
    # rule for mixed classes (MathWorks, "Valid Combinations of Unlike Classes"; dlarray
    # arithmetic follows it whatever this says).
    "mixed_precision": "double",
}

_ALLOWED = {
    "times": ("×", "x"),
    "type_names": ("current", "legacy"),
    "same_crop_extra": ("end", "start"),
    "transposed_he_fan_in": ("channels", "filters"),
    "batchnorm_variance": ("biased", "unbiased"),
    "empty_batch": ("empty", "error"),
    "dropout_mask": ("single", "double"),
    "network_fold_batchnorm": (True, False),
    "network_compile": (True, False),
    "maxpool_padding": ("-realmax", "-Inf"),
    "mixed_precision": ("double", "single"),
}


def get(name):
    return _DEFAULTS[name]


class package_defaults:  # noqa: N801  (used like a function)
    """Read or set the package defaults; also a context manager that restores them.

    Examples
    --------
    >>> ml.package_defaults()["times"]
    '×'
    >>> with ml.package_defaults(times="x"):
    ...     print(ml.transposedConv3dLayer(11, 32))      # "[2x3 double]" as in R2019
    """

    def __init__(self, **settings):
        for name, value in settings.items():
            if name not in _DEFAULTS:
                raise TypeError(f"package_defaults: unknown setting '{name}'; valid "
                                f"settings are: {', '.join(_DEFAULTS)}")
            if value not in _ALLOWED[name]:
                raise ValueError(f"package_defaults: {name} must be one of "
                                 f"{', '.join(repr(a) for a in _ALLOWED[name])}, "
                                 f"got {value!r}")
        self._old = dict(_DEFAULTS)
        _DEFAULTS.update(settings)

    def __enter__(self):
        return dict(_DEFAULTS)

    def __exit__(self, *exc):
        _DEFAULTS.clear()
        _DEFAULTS.update(self._old)
        return False

    def __getitem__(self, name):
        return _DEFAULTS[name]

    def __repr__(self):
        return repr(dict(_DEFAULTS))

    def keys(self):
        return _DEFAULTS.keys()
