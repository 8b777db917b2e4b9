"""The one snapshot naming-and-choosing module and the one restricted unpickler."""

import io
import pickle

import pytest

from human_body_prior.files.unpickling import as_pickle_module, restricted_unpickler
from human_body_prior.priors.snapshots import (
    best_snapshot,
    is_v1_snapshot_name,
    snapshot_epoch,
    v1_snapshot_name,
    v1_try_prefix,
    v2_snapshot_name,
)


def _touch(folder, *names):
    (folder / "snapshots").mkdir(parents=True, exist_ok=True)
    for n in names:
        (folder / "snapshots" / n).write_bytes(b"")


def test_names_round_trip():
    assert v1_snapshot_name(7) == "TR00_E007.pt" and v1_snapshot_name(12, try_num=3) == "TR03_E012.pt"
    assert snapshot_epoch(v1_snapshot_name(12, 3), 1) == 12 and v1_try_prefix("TR03_E012.pt") == "TR03_"
    name = v2_snapshot_name("V02_05", 13, 0.0312)
    assert name == "V02_05_epoch=13_val_loss=0.03.ckpt" and snapshot_epoch(name, 2) == 13
    assert is_v1_snapshot_name("TR00_E001.pt") and not is_v1_snapshot_name("model.pt")
    assert snapshot_epoch("model.pt", 1) is None and snapshot_epoch("last.ckpt", 2) is None


def test_best_v1_snapshot(tmp_path):
    _touch(tmp_path, "TR00_E009.pt", "TR01_E010.pt", "TR00_E010.pt", "notes.pt")
    assert best_snapshot(tmp_path, 1).name == "TR01_E010.pt"


def test_best_v2_snapshot(tmp_path):
    _touch(tmp_path, "a_epoch=03_val_loss=0.50.ckpt", "a_epoch=05_val_loss=0.90.ckpt",
           "b_epoch=05_val_loss=0.20.ckpt", "last.ckpt")
    assert best_snapshot(tmp_path, 2).name == "b_epoch=05_val_loss=0.20.ckpt"


def test_best_snapshot_errors_name_the_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match=f"no snapshots/ folder in the experiment folder {tmp_path}"):
        best_snapshot(tmp_path, 1)
    _touch(tmp_path, "x.ckpt")
    with pytest.raises(FileNotFoundError, match=r"no snapshot \(\*\.pt\) in .*but \*\.ckpt files"):
        best_snapshot(tmp_path, 1)
    _touch(tmp_path, "a.pt", "b.pt")
    with pytest.raises(FileNotFoundError, match="cannot tell the best snapshot"):
        best_snapshot(tmp_path, 1)
    assert best_snapshot(tmp_path, 2).name == "x.ckpt"  # a single file under another name


class _Thing:
    pass


def test_restricted_unpickler_allows_stands_in_and_refuses():
    class Seen:
        def __init__(self, *a):
            pass

        def __setstate__(self, state):
            pass

    def stand_in(module, name):
        return Seen if name == "_Thing" else None

    unpickler = restricted_unpickler({("builtins", "set"): set}, lambda m, n: (m, n), stand_in,
                                     lambda m, n, k: pickle.UnpicklingError(f"no {m}.{n}"))
    assert unpickler(io.BytesIO(pickle.dumps({1, 2}))).load() == {1, 2}
    assert isinstance(unpickler(io.BytesIO(pickle.dumps(_Thing()))).load(), Seen)
    with pytest.raises(pickle.UnpicklingError, match="no builtins.complex"):
        unpickler(io.BytesIO(pickle.dumps(complex(1, 2)))).load()
    module = as_pickle_module(unpickler, "restricted")
    assert module.load(io.BytesIO(pickle.dumps({3}))) == {3} and module.__name__ == "restricted"
