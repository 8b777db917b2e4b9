"""Write a built body in the official SMPL / SMPL-H / SMPL-X ``.npz`` layouts.

Shared keys: v_template (V, 3), f (F, 3) uint32, J_regressor (J, V), kintree_table (2, J)
uint32 (row 0 parents, root 4294967295 as in the official files; row 1 joint ids),
weights (V, J), posedirs (V, 3, 9 (J - 1)) all zero, shapedirs (V, 3, K).
SMPL-X: K = 400, shape in columns 0..299, expression in 300..399.
SMPL-H and SMPL: K = 300 (smplx caps both at 10 betas unless the file has 300 columns).
Texture coordinates as in the official files: ``vt`` (T, 2) float64 (OBJ convention, v up) and ``ft``
(F, 3) uint32, the corners of face ``f[i]`` in ``vt`` (MakeHuman's hm08 UV layout; not in MANO files).
Extra non-official key: ``keypoint_vertex_ids`` (21,), smplx's extra keypoints in the order of
``landmarks.KEYPOINT_NAMES``.
Each file's vertices are reordered so smplx's vertex-id table for its type lands on the matching
anatomy (``vertex_order``): SMPL-X follows the ``smplx`` table, SMPL-H and SMPL the ``smplh`` table,
MANO the ``mano`` table; ``keypoint_vertex_ids`` then equals that table.
SMPL-X files also carry ``joint2num`` and ``part2num`` (dicts as 0-d object arrays, as the official
SMPL-X files do; body-models reads the joint names from ``joint2num``). SMPL is also written as a
plain-numpy ``.pkl`` (``plain_pickle_bytes``) for ``smplx.create(model_type='smpl')``.
"""

from __future__ import annotations

import io
import pickle
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from human_body_prior.files.atomic_io import atomic_write
from human_body_prior.model_types.joints import (
    PARENTS,
    SMPL_JOINT_NAMES,
    SMPLH_JOINT_NAMES,
    SMPLX_JOINT_NAMES,
    official_name_table,
)
from human_body_prior.open_model.landmarks import KEYPOINT_NAMES
from human_body_prior.open_model.vertex_order import MANO_FINGERTIPS, reorder_for_table

ROOT_PARENT = 4294967295
QUANTUM = 2.0 ** -24  # metres; rounding shape directions this finely lets them compress better


@dataclass
class BuiltBody:
    """One gender's body over the SMPL-X joint tree (55 joints), metres."""

    v_template: np.ndarray      # (V, 3)
    faces: np.ndarray           # (F, 3)
    weights: np.ndarray         # (V, 55)
    j_regressor: np.ndarray     # (55, V)
    shapedirs: np.ndarray       # (V, 3, Ks)
    exprdirs: np.ndarray        # (V, 3, Ke)
    lmk_faces_idx: np.ndarray
    lmk_bary_coords: np.ndarray
    dynamic_lmk_faces_idx: np.ndarray
    dynamic_lmk_bary_coords: np.ndarray
    keypoint_vertex_ids: np.ndarray
    uvs: np.ndarray | None = None       # (T, 2) texture coordinates
    faces_uv: np.ndarray | None = None  # (F, 3) corners of each face in uvs


def _kintree(model_type: str) -> np.ndarray:
    parents = np.asarray(PARENTS[model_type], dtype=np.int64)
    table = np.stack([np.where(parents < 0, ROOT_PARENT, parents), np.arange(len(parents))])
    return table.astype(np.uint32)


def _merge_joints(weights: np.ndarray, regressor: np.ndarray, names: list[str], fold: dict[str, str]):
    """Re-express SMPL-X weights/regressor on a smaller tree; ``fold`` sends a dropped SMPL-X
    joint to the joint of ``names`` that takes its skinning weight."""
    index = {n: i for i, n in enumerate(SMPLX_JOINT_NAMES)}
    w = np.zeros((weights.shape[0], len(names)))
    reg = np.zeros((len(names), regressor.shape[1]))
    target = {n: names.index(fold.get(n, n)) for n in SMPLX_JOINT_NAMES}
    for n, j in index.items():
        w[:, target[n]] += weights[:, j]
    for k, n in enumerate(names):
        reg[k] = regressor[index[n] if n in index else index[fold[n]]]
    return w, reg


def _pad_dirs(dirs: np.ndarray, total: int, start: int = 0, out: np.ndarray | None = None) -> np.ndarray:
    if out is None:
        out = np.zeros(dirs.shape[:2] + (total,), dtype=np.float32)
    k = dirs.shape[2]
    if start + k > total:
        raise ValueError(f"{k} components do not fit in columns {start}..{total - 1}")
    # + 0 turns -0.0 into +0.0: which tiny values round to zero from below depends on BLAS summation
    # order (thread count), and the sign of a zero must not change the file's bytes
    out[:, :, start:start + k] = (np.round(dirs / QUANTUM) * QUANTUM).astype(np.float32) + np.float32(0)
    return out


def _common(body: BuiltBody, model_type: str, weights, regressor) -> dict[str, np.ndarray]:
    j = regressor.shape[0]
    v = body.v_template.shape[0]
    return {
        "v_template": body.v_template.astype(np.float64),
        "f": body.faces.astype(np.uint32),
        "J_regressor": regressor.astype(np.float64),
        "kintree_table": _kintree(model_type),
        "weights": weights.astype(np.float64),
        "posedirs": np.zeros((v, 3, 9 * (j - 1)), dtype=np.float32),
        **({} if body.uvs is None else {"vt": body.uvs.astype(np.float64), "ft": body.faces_uv.astype(np.uint32)}),
    }


def _hand_pca() -> dict[str, np.ndarray]:
    # no hand-pose data set went into this model: identity components, flat hand mean
    eye = np.eye(45, dtype=np.float64)
    zero = np.zeros(45, dtype=np.float64)
    return {"hands_componentsl": eye, "hands_componentsr": eye.copy(),
            "hands_meanl": zero, "hands_meanr": zero.copy()}


def smplx_arrays(body: BuiltBody) -> dict[str, np.ndarray]:
    out = _common(body, "smplx", body.weights, body.j_regressor)
    dirs = _pad_dirs(body.shapedirs, 400, 0)
    _pad_dirs(body.exprdirs, 400, 300, out=dirs)
    out["shapedirs"] = dirs
    out.update(_hand_pca())
    out.update({
        "lmk_faces_idx": body.lmk_faces_idx.astype(np.int64),
        "lmk_bary_coords": body.lmk_bary_coords.astype(np.float64),
        "dynamic_lmk_faces_idx": body.dynamic_lmk_faces_idx.astype(np.int64),
        "dynamic_lmk_bary_coords": body.dynamic_lmk_bary_coords.astype(np.float64),
        "keypoint_vertex_ids": body.keypoint_vertex_ids.astype(np.int64),
        # part2num: one skinning part per joint, named like the joints
        "joint2num": official_name_table("smplx"), "part2num": official_name_table("smplx"),
    })
    return reorder_for_table(out, "smplx", body.keypoint_vertex_ids)


def smplh_arrays(body: BuiltBody) -> dict[str, np.ndarray]:
    fold = {"jaw": "head", "left_eye_smplhf": "head", "right_eye_smplhf": "head"}
    w, reg = _merge_joints(body.weights, body.j_regressor, SMPLH_JOINT_NAMES, fold)
    out = _common(body, "smplh", w, reg)
    out["shapedirs"] = _pad_dirs(body.shapedirs, 300)
    out.update(_hand_pca())
    out["keypoint_vertex_ids"] = body.keypoint_vertex_ids.astype(np.int64)
    return reorder_for_table(out, "smplh", body.keypoint_vertex_ids)


def smpl_arrays(body: BuiltBody) -> dict[str, np.ndarray]:
    # SMPL's hand joint sits at the middle-finger knuckle and carries all fingers
    fold = {"jaw": "head", "left_eye_smplhf": "head", "right_eye_smplhf": "head",
            "left_hand": "left_middle1", "right_hand": "right_middle1"}
    for side in ("left", "right"):
        for finger in ("index", "middle", "pinky", "ring", "thumb"):
            for k in (1, 2, 3):
                fold[f"{side}_{finger}{k}"] = f"{side}_hand"
    w, reg = _merge_joints(body.weights, body.j_regressor, SMPL_JOINT_NAMES, fold)
    out = _common(body, "smpl", w, reg)
    out["shapedirs"] = _pad_dirs(body.shapedirs, 300)
    out["keypoint_vertex_ids"] = body.keypoint_vertex_ids.astype(np.int64)
    return reorder_for_table(out, "smpl", body.keypoint_vertex_ids)


def _write_npz(fh, arrays: dict[str, np.ndarray]) -> None:
    """Same bytes as ``np.savez_compressed`` but with fixed member timestamps, so a rebuild
    gives an identical file (numpy stamps members with the current time)."""
    with zipfile.ZipFile(fh, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name in sorted(arrays):
            info = zipfile.ZipInfo(name + ".npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            buf = io.BytesIO()
            arr = np.asarray(arrays[name])
            # only the 0-d name tables are object arrays (pickled inside the .npy, as official files do)
            np.lib.format.write_array(buf, np.ascontiguousarray(arr), allow_pickle=arr.dtype.hasobject)
            zf.writestr(info, buf.getvalue(), compresslevel=9)


def save_npz_atomic(path: str | Path, arrays: dict[str, np.ndarray]) -> int:
    """Write a compressed npz atomically (temp file + rename); returns its size in bytes."""
    def write(tmp):
        with open(tmp, "wb") as fh:
            _write_npz(fh, arrays)

    atomic_write(path, write)
    return Path(path).stat().st_size


class _Inflate:
    """Array bytes stored deflated; unpickled by ``zlib.decompress`` (standard library)."""

    def __init__(self, raw: bytes):
        self.compressed = zlib.compress(raw, 9)

    def __reduce__(self):
        return zlib.decompress, (self.compressed,)


class _DeflatedArrayPickler(pickle.Pickler):
    """Pickles ndarrays exactly as numpy does (``_reconstruct`` + state) except that the data bytes are
    deflated: the mostly-zero SMPL arrays shrink from ~80 MB to the size of the .npz."""

    def reducer_override(self, obj):
        if type(obj) is not np.ndarray or obj.dtype.hasobject:
            return NotImplemented
        arr = np.ascontiguousarray(obj)
        constructor, args, _ = arr.__reduce__()
        return constructor, args, (1, arr.shape, arr.dtype, False, _Inflate(arr.tobytes()))


def plain_pickle_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    """A .pkl of a dict of numpy arrays (no chumpy, no scipy) that ``pickle.load`` and smplx read."""
    buf = io.BytesIO()
    _DeflatedArrayPickler(buf, protocol=4).dump({k: arrays[k] for k in sorted(arrays)})
    return buf.getvalue()


def save_pickle_atomic(path: str | Path, arrays: dict[str, np.ndarray]) -> int:
    data = plain_pickle_bytes(arrays)

    def write(tmp):
        with open(tmp, "wb") as fh:
            fh.write(data)

    atomic_write(path, write)
    return Path(path).stat().st_size


def mano_arrays(body: BuiltBody, side: str, num_betas: int = 10) -> dict[str, np.ndarray]:
    """MANO hand cut out of the body: the skin the hand joints carry (weight >= 0.5) plus every
    vertex their regressor rows use, joints wrist + 15 fingers; wrist joint moved to the origin.

    Shape directions are the body's first ``num_betas`` restricted to the hand.
    """
    if side not in ("left", "right"):
        raise ValueError(f"MANO side must be 'left' or 'right', got {side!r}")
    index = {n: i for i, n in enumerate(SMPLX_JOINT_NAMES)}
    names = [f"{side}_wrist"] + [f"{side}_{f}{k}" for f in ("index", "middle", "pinky", "ring", "thumb")
                                 for k in (1, 2, 3)]
    cols = [index[n] for n in names]
    mass = body.weights[:, cols].sum(1)
    keep = (mass >= 0.5) | (body.j_regressor[cols].max(0) > 0)
    faces = body.faces[keep[body.faces].all(1)]
    used = np.zeros(len(keep), dtype=bool)
    used[faces.ravel()] = True
    used |= body.j_regressor[cols].max(0) > 0
    old = np.flatnonzero(used)
    new_of_old = -np.ones(len(keep), dtype=np.int64)
    new_of_old[old] = np.arange(len(old))
    weights = body.weights[old][:, cols].copy()
    weights[:, 0] += np.clip(1.0 - weights.sum(1), 0.0, None)  # the arm's share goes to the wrist (root)
    weights /= weights.sum(1, keepdims=True)
    reg = body.j_regressor[cols][:, old]
    if not np.allclose(reg.sum(1), 1.0):
        raise ValueError("MANO cut lost part of a hand joint's regressor support")
    origin = reg[0] @ body.v_template[old]
    v = body.v_template[old] - origin
    out = {
        "v_template": v.astype(np.float64),
        "f": new_of_old[faces].astype(np.uint32),
        "J_regressor": reg.astype(np.float64),
        "kintree_table": _kintree("mano"),
        "weights": weights.astype(np.float64),
        "posedirs": np.zeros((len(old), 3, 9 * 15), dtype=np.float32),
        "shapedirs": _pad_dirs(body.shapedirs[old][:, :, :num_betas], num_betas),
        "hands_components": np.eye(45, dtype=np.float64),
        "hands_mean": np.zeros(45, dtype=np.float64),
    }
    prefix = side[0]  # KEYPOINT_NAMES call the fingertips lthumb, ..., rpinky
    tips = body.keypoint_vertex_ids[[KEYPOINT_NAMES.index(prefix + f) for f in MANO_FINGERTIPS]]
    return reorder_for_table(out, "mano", new_of_old[tips])
