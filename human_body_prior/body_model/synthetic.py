"""Random but structured model files in the official SMPL-family layouts, for tests, demos and benchmarks.

The bodies are not human: joints sit on a random tree, vertices cluster around the joints, each
vertex is skinned to its joint and that joint's parent, and each joint is regressed from a few of
its own vertices. Every array has the official key, shape and dtype.
"""

import pickle
from pathlib import Path

import numpy as np

from human_body_prior.files.atomic_io import atomic_write_bytes, save_npz_atomic
from human_body_prior.model_types.joints import PARENTS, official_name_table
from human_body_prior.model_types.spec import SPECS

OFFICIAL_NUM_VERTS = {name: spec.num_vertices for name, spec in SPECS.items()}
DEFAULT_SHAPE_COLUMNS = {"smpl": 10, "smplh": 16, "smplx": 400, "mano": 10}
_ROOT_PARENT = 2 ** 32 - 1  # how the official files store the root's parent


def synthetic_model_arrays(model_type: str, num_verts=None, num_shape_columns=None, posedirs=True,
                           seed: int = 0) -> dict:
    """Arrays of a random model file. Lengths in metres; SMPL-X has 300 + 100 shape columns by default."""
    if model_type not in PARENTS:
        raise ValueError(f"model_type must be one of {sorted(PARENTS)}, got {model_type!r}")
    rng = np.random.default_rng(seed)
    parents = np.array(PARENTS[model_type])
    J = len(parents)
    V = int(num_verts or OFFICIAL_NUM_VERTS[model_type])
    K = int(num_shape_columns or DEFAULT_SHAPE_COLUMNS[model_type])
    if V < 4 * J:
        raise ValueError(f"need at least {4 * J} vertices for {J} joints, got {V}")

    joints = np.zeros((J, 3))
    for j in range(1, J):
        joints[j] = joints[parents[j]] + rng.normal(scale=0.08, size=3)
    owner = np.concatenate([np.arange(J).repeat(4), rng.integers(0, J, size=V - 4 * J)])
    v_template = joints[owner] + rng.normal(scale=0.03, size=(V, 3))

    weights = np.zeros((V, J))
    share = rng.uniform(0.5, 1.0, size=V)
    weights[np.arange(V), owner] = share
    parent_of_owner = np.where(parents[owner] >= 0, parents[owner], owner)
    np.add.at(weights, (np.arange(V), parent_of_owner), 1 - share)

    J_regressor = np.zeros((J, V))
    for j in range(J):
        own = np.flatnonzero(owner == j)[:6]
        w = rng.uniform(0.2, 1.0, size=len(own))
        J_regressor[j, own] = w / w.sum()

    first = rng.integers(0, V, size=2 * V)
    steps = rng.integers(1, V // 3, size=(2 * V, 2)).cumsum(axis=1)  # two distinct offsets below V
    faces = np.column_stack([first, (first[:, None] + steps) % V])
    arrays = {
        "v_template": v_template,
        "f": faces.astype(np.uint32),
        "J_regressor": J_regressor,
        "kintree_table": np.stack([np.where(parents < 0, _ROOT_PARENT, parents), np.arange(J)]).astype(np.int64),
        "weights": weights,
        "shapedirs": rng.normal(scale=0.01, size=(V, 3, K)),
    }
    if posedirs:
        arrays["posedirs"] = rng.normal(scale=0.003, size=(V, 3, 9 * (J - 1)))
    if model_type in ("smplh", "smplx"):
        for side in "lr":
            arrays[f"hands_components{side}"] = np.linalg.qr(rng.normal(size=(45, 45)))[0]
            arrays[f"hands_mean{side}"] = rng.normal(scale=0.1, size=45)
    if model_type == "smplx":
        arrays["joint2num"] = official_name_table("smplx")
        arrays["part2num"] = official_name_table("smplx")
        arrays["lmk_faces_idx"] = rng.integers(0, len(faces), size=51).astype(np.int64)
        arrays["lmk_bary_coords"] = rng.dirichlet(np.ones(3), size=51)
        arrays["dynamic_lmk_faces_idx"] = rng.integers(0, len(faces), size=(79, 17)).astype(np.int64)
        arrays["dynamic_lmk_bary_coords"] = rng.dirichlet(np.ones(3), size=(79, 17))
    if model_type == "mano":
        arrays["hands_components"] = np.linalg.qr(rng.normal(size=(45, 45)))[0]
        arrays["hands_mean"] = rng.normal(scale=0.1, size=45)
    return arrays


def write_synthetic_model(path, model_type: str, num_verts=None, num_shape_columns=None, posedirs=True,
                          seed: int = 0, dtype=np.float64) -> str:
    """Write a random model file; the format (.npz or plain-numpy .pkl) follows the extension."""
    path = Path(path)
    arrays = synthetic_model_arrays(model_type, num_verts, num_shape_columns, posedirs, seed)
    arrays = {k: v.astype(dtype) if v.dtype.kind == "f" else v for k, v in arrays.items()}
    if path.suffix == ".npz":
        return save_npz_atomic(path, arrays, compressed=False)
    if path.suffix == ".pkl":
        return atomic_write_bytes(path, pickle.dumps(arrays, protocol=2))
    raise ValueError(f"{path}: extension must be .npz or .pkl")
