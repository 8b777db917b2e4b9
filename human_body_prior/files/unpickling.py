"""The one restricted unpickler: a pickle's globals come from the caller's allowlist, or become inert
stand-ins (files/stand_in.py), or are refused; nothing else of the file is imported or run.

Each reader keeps its own policy (body-model files: body_model/model_io.py; V02 checkpoints:
priors/vposer_v2_io.py) and passes it here as four callables and a dict.
"""

import pickle
import types
from typing import Callable, Hashable, Mapping, Optional


def restricted_unpickler(allowed: Mapping[Hashable, object], key: Callable[[str, str], Hashable],
                         stand_in: Callable[[str, str], Optional[type]],
                         refuse: Callable[[str, str, Hashable], Exception]) -> type:
    """A pickle.Unpickler subclass whose ``find_class(module, name)`` returns ``allowed[key(module, name)]``,
    else ``stand_in(module, name)`` when that is a class, else raises ``refuse(module, name, key)``."""

    class RestrictedUnpickler(pickle.Unpickler):
        def find_class(self, module, name):
            k = key(module, name)
            if k in allowed:
                return allowed[k]
            cls = stand_in(module, name)
            if cls is not None:
                return cls
            raise refuse(module, name, k)

    return RestrictedUnpickler


def as_pickle_module(unpickler: type, name: str) -> types.SimpleNamespace:
    """A stand-in for the ``pickle`` module (``torch.load(..., pickle_module=...)``) that unpickles with ``unpickler``."""

    def load(f, **kwargs):
        return unpickler(f, **kwargs).load()

    return types.SimpleNamespace(__name__=name, Unpickler=unpickler, load=load, UnpicklingError=pickle.UnpicklingError)
