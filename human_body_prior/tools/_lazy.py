"""Lazy re-exports for the upstream-compatibility shims of tools/: names are looked up in their real
homes on first use, so that importing a shim imports nothing from the rest of the package."""

import importlib


def lazy_reexport(shim: str, homes, names):
    """Module-level ``__getattr__`` and ``__dir__`` for the shim module ``shim`` that resolve a name in
    the first of the modules ``homes`` (dotted paths) that defines it; ``names``: the shim's __all__."""

    def __getattr__(name):
        if not name.startswith("__"):
            for home in homes:
                module = importlib.import_module(home)
                if hasattr(module, name):
                    return getattr(module, name)
        raise AttributeError(f"module {shim!r} has no attribute {name!r}")

    def __dir__():
        return sorted(set(names) | set(vars(importlib.import_module(shim))))

    return __getattr__, __dir__
