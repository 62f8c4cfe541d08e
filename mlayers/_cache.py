"""A small least-recently-used cache: the layers' per-input-size plans (issue 21).

Each layer keeps the plans it made for the input sizes it has seen (``Layer._memo``).
Unbounded, that grew with every distinct size (13 MiB for 5,000 sequence lengths); an
LRU of :data:`PLAN_CACHE_SIZE` entries keeps the sizes in use (a training loop alternates
between a few: full and last batches, train and validation) and forgets the rest.
"""
from collections import OrderedDict

#: Plans one layer keeps (distinct input sizes and dtypes).
PLAN_CACHE_SIZE = 8


class LRUCache(OrderedDict):
    """A dict that keeps at most ``maxsize`` entries, evicting the least recently used.

    ``get`` and ``[]`` count as uses; ``clear`` empties it (a property assignment does).
    """

    __slots__ = ("maxsize",)

    def __init__(self, maxsize=PLAN_CACHE_SIZE):
        super().__init__()
        self.maxsize = maxsize

    def get(self, key, default=None):
        try:
            value = OrderedDict.__getitem__(self, key)
        except KeyError:
            return default
        self._used(key)
        return value

    def __getitem__(self, key):
        value = OrderedDict.__getitem__(self, key)
        self._used(key)
        return value

    def _used(self, key):
        try:
            self.move_to_end(key)
        except KeyError:
            pass        # another thread evicted it meanwhile: the value is still good

    def __setitem__(self, key, value):
        OrderedDict.__setitem__(self, key, value)
        self.move_to_end(key)
        while len(self) > self.maxsize:
            self.popitem(last=False)

    def copy(self):
        c = type(self)(self.maxsize)
        for k, v in self.items():
            OrderedDict.__setitem__(c, k, v)
        return c

    def __reduce__(self):
        return (type(self), (self.maxsize,), None, None, iter(self.items()))
