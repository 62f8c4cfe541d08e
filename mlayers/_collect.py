"""How a package re-exports its modules: each module lists its public names in ``__all__``."""
import importlib


def collect(package, modules, namespace):
    """Import ``package.<module>`` for each of ``modules``, copy their public names into
    ``namespace`` (the package's globals) and return the names, in module order."""
    names = []
    for name in modules:
        module = importlib.import_module(f".{name}", package)
        for public in module.__all__:
            namespace[public] = getattr(module, public)
        names += module.__all__
    return names
