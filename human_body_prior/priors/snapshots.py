"""Snapshot names of VPoser experiment folders, and choosing the best snapshot: the one place for both.

    v1 (2019): snapshots/TRxx_Eyyy.pt                       xx: try number, yyy: epoch
    v2 (V02):  snapshots/<expr_id>_epoch=NN_val_loss=X.ckpt  Lightning's pattern

The best snapshot is read from the names alone (file times are ignored: copies and unzips reset them):
v1 the highest epoch, then the highest try; v2 the highest epoch, then the lowest val_loss, then the name.
"""

import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

V1_SNAPSHOT_RE = re.compile(r"^TR(\d+)_E(\d+)\.pt$")
V2_EPOCH_RE = re.compile(r"epoch=(\d+)")
V2_VAL_LOSS_RE = re.compile(r"val_loss=([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)")
_V1_LOADER = "human_body_prior.tools.model_loader.load_vposer"
_V2_LOADER = "human_body_prior.tools.model_loader.load_model"


# ---------------------------------------------------------------------------------------------- names
def v1_snapshot_name(epoch: int, try_num: int = 0) -> str:
    """'TRxx_Eyyy.pt'."""
    return f"TR{int(try_num):02d}_E{int(epoch):03d}.pt"


def v2_snapshot_name(expr_id: str, epoch: int, val_loss: float) -> str:
    """Lightning's checkpoint name pattern, as upstream: '<expr_id>_epoch=13_val_loss=0.03.ckpt'."""
    return f"{expr_id}_epoch={int(epoch):02d}_val_loss={float(val_loss):.2f}.ckpt"


def is_v1_snapshot_name(name: str) -> bool:
    return V1_SNAPSHOT_RE.match(name) is not None


def v1_try_prefix(name: str) -> Optional[str]:
    """'TRxx_' of a v1 snapshot name (its settings file starts with it), None for other names."""
    m = V1_SNAPSHOT_RE.match(name)
    return f"TR{m.group(1)}_" if m else None


def snapshot_epoch(name: str, version: int) -> Optional[int]:
    """The epoch in a v1 (TRxx_Eyyy.pt) or v2 (..._epoch=NN_...) snapshot name; None if it has none."""
    m = V1_SNAPSHOT_RE.match(name) if version == 1 else V2_EPOCH_RE.search(name)
    return int(m.group(2 if version == 1 else 1)) if m else None


# ---------------------------------------------------------------------------------------------- choosing
def _v1_key(path: Path):
    m = V1_SNAPSHOT_RE.match(path.name)
    return (int(m.group(2)), int(m.group(1)), path) if m else None


def _v2_key(path: Path):
    m = V2_EPOCH_RE.search(path.stem)
    v = V2_VAL_LOSS_RE.search(path.stem)
    val = float(v.group(1)) if v else math.inf
    return (-int(m.group(1)), val if not math.isnan(val) else math.inf, path.name) if m else None


def _v1_none(snap_dir: Path) -> str:
    if any(snap_dir.glob("*.ckpt")):
        return (f"no snapshot (*.pt) in {snap_dir}, but *.ckpt files: a VPoser v2 (V02) experiment folder; "
                f"load it with {_V2_LOADER}")
    return f"no snapshot (*.pt) in {snap_dir}"


def _v2_none(snap_dir: Path) -> str:
    pts = sorted(p.name for p in snap_dir.glob("*.pt"))
    hint = f"; it holds {pts[:5]}, a VPoser v1 (2019) layout: load it with {_V1_LOADER}" if pts else ""
    return f"no checkpoint (*.ckpt) in {snap_dir}{hint}"


@dataclass(frozen=True)
class _Layout:
    suffix: str
    key: Callable  # path -> sortable, or None for a name outside the pattern
    pick: Callable  # min or max over (key, path)
    folder: str  # how a missing snapshots/ folder names the experiment folder
    what: str  # 'snapshot' | 'checkpoint'
    unnamed: str  # what none of the names has
    none: Callable  # snap_dir -> message when no file has the suffix


_LAYOUTS = {
    1: _Layout(".pt", _v1_key, max, "the experiment folder", "snapshot", "is named TRxx_Eyyy.pt", _v1_none),
    2: _Layout(".ckpt", _v2_key, min, "the VPoser v2 experiment folder", "checkpoint", "has 'epoch=N' in its name",
               _v2_none),
}


def best_snapshot(expr_dir, version: int) -> Path:
    """The best snapshots/ file of a v1 or v2 experiment folder (see the module docstring); a single
    file under another name is unambiguous. FileNotFoundError naming the folder otherwise."""
    layout, expr_dir = _LAYOUTS[version], Path(expr_dir)
    snap_dir = expr_dir / "snapshots"
    if not snap_dir.is_dir():
        raise FileNotFoundError(f"no snapshots/ folder in {layout.folder} {expr_dir}")
    files = sorted(p for p in snap_dir.iterdir() if p.suffix == layout.suffix and p.is_file())
    named = [(k, p) for p in files if (k := layout.key(p)) is not None]
    if named:
        return layout.pick(named)[1]
    if len(files) == 1:
        return files[0]
    if not files:
        raise FileNotFoundError(layout.none(snap_dir))
    raise FileNotFoundError(f"cannot tell the best {layout.what} in {snap_dir}: none of {[p.name for p in files]} "
                            f"{layout.unnamed}")
