"""The inert object a restricted unpickler builds in place of a class it will not import."""


class StandIn:
    """Built for a global of the file (a chumpy array, a Lightning callback, ...) without importing or
    running anything of it: construction ignores its arguments and ``__setstate__`` drops the state.
    Subclasses say what of the state they keep; ``stand_in_class`` names one after its source."""

    source = "?"  # "module.qualname" of the class this object replaces

    def __new__(cls, *args, **kwargs):
        return object.__new__(cls)

    def __init__(self, *args, **kwargs):
        pass

    def __setstate__(self, state):
        pass


def stand_in_class(base: type, module: str, name: str) -> type:
    """A subclass of ``base`` (a StandIn) named ``name``, for the global ``module.name`` of a file."""
    return type(name, (base,), {"source": f"{module}.{name}"})
