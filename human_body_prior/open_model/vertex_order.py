"""Vertex order of the shipped open models: smplx's keypoint vertex ids land on the matching anatomy.

smplx (and code built on it: smplify-x, OpenPose mappings) adds extra joints by fixed vertex ids of the
official meshes (its public ``vertex_ids`` tables). The open mesh has other vertex numbers, so each file
reorders its vertices: the vertex that is anatomically the nose goes to the table's nose id, and so on.
The SMPL-X file follows the ``smplx`` table, SMPL and SMPL-H the ``smplh`` table, MANO the ``mano`` table.
Only those vertices and the ones they displace move (a product of swaps); faces are re-indexed, face
order is kept, so face landmarks (face indices + barycentrics) are unchanged.
"""

from __future__ import annotations

import numpy as np

from human_body_prior.open_model.landmarks import KEYPOINT_NAMES

# The published vertex ids of smplx's ``vertex_ids`` tables (numbers of a public API, by keypoint name).
SMPLX_TABLE = {
    "nose": 9120, "reye": 9929, "leye": 9448, "rear": 616, "lear": 6, "rthumb": 8079, "rindex": 7669,
    "rmiddle": 7794, "rring": 7905, "rpinky": 8022, "lthumb": 5361, "lindex": 4933, "lmiddle": 5058,
    "lring": 5169, "lpinky": 5286, "LBigToe": 5770, "LSmallToe": 5780, "LHeel": 8846, "RBigToe": 8463,
    "RSmallToe": 8474, "RHeel": 8635,
}
SMPLH_TABLE = {
    "nose": 332, "reye": 6260, "leye": 2800, "rear": 4071, "lear": 583, "rthumb": 6191, "rindex": 5782,
    "rmiddle": 5905, "rring": 6016, "rpinky": 6133, "lthumb": 2746, "lindex": 2319, "lmiddle": 2445,
    "lring": 2556, "lpinky": 2673, "LBigToe": 3216, "LSmallToe": 3226, "LHeel": 3387, "RBigToe": 6617,
    "RSmallToe": 6624, "RHeel": 6787,
}
MANO_TABLE = {"thumb": 744, "index": 320, "middle": 443, "ring": 554, "pinky": 671}
TABLES = {"smplx": SMPLX_TABLE, "smplh": SMPLH_TABLE, "smpl": SMPLH_TABLE, "mano": MANO_TABLE}
MANO_FINGERTIPS = ("thumb", "index", "middle", "ring", "pinky")

# Arrays indexed by vertex along their first axis; J_regressor along its second.
_PER_VERTEX = ("v_template", "weights", "shapedirs", "posedirs", "eigvec")


def swap_permutation(num_verts: int, sources, targets) -> np.ndarray:
    """(V,) ``perm`` with ``perm[new] = old`` that puts old vertex ``sources[i]`` at ``targets[i]`` by
    successive swaps, so at most 2 len(sources) vertices move."""
    sources, targets = [int(s) for s in sources], [int(t) for t in targets]
    if len(set(sources)) != len(sources) or len(set(targets)) != len(targets):
        raise ValueError("vertex order: sources and targets must each be distinct")
    if max(sources + targets, default=0) >= num_verts:
        raise ValueError(f"vertex order: an id exceeds the mesh's {num_verts} vertices")
    perm = np.arange(num_verts)
    where = np.arange(num_verts)  # where[old] = current new position of old vertex
    for s, t in zip(sources, targets):
        p = where[s]
        perm[p], perm[t] = perm[t], perm[p]
        where[perm[p]], where[perm[t]] = p, t
    return perm


def permute_vertices(arrays: dict, perm: np.ndarray) -> dict:
    """The model arrays with vertex ``perm[i]`` renumbered ``i``: per-vertex arrays gathered, J_regressor
    columns gathered, faces and ``keypoint_vertex_ids`` mapped to the new numbers (same dtypes)."""
    inverse = np.empty_like(perm)
    inverse[perm] = np.arange(len(perm))
    out = dict(arrays)
    for key in _PER_VERTEX:
        if key in out:
            out[key] = np.ascontiguousarray(out[key][perm])
    if "J_regressor" in out:
        out["J_regressor"] = np.ascontiguousarray(out["J_regressor"][:, perm])
    for key in ("f", "keypoint_vertex_ids"):
        if key in out:
            out[key] = inverse[out[key]].astype(out[key].dtype)
    return out


def reorder_for_table(arrays: dict, model_type: str, keypoint_vertices) -> dict:
    """Reorder a file's arrays so smplx's ``TABLES[model_type]`` ids sit on ``keypoint_vertices``.

    keypoint_vertices: for body models the (21,) current vertex ids in ``KEYPOINT_NAMES`` order; for MANO
    the (5,) fingertip vertex ids in ``MANO_FINGERTIPS`` order. Afterwards ``keypoint_vertex_ids`` (body
    models) equals the table's ids.
    """
    table = TABLES[model_type]
    names = MANO_FINGERTIPS if model_type == "mano" else KEYPOINT_NAMES
    keypoint_vertices = np.asarray(keypoint_vertices, dtype=np.int64)
    if keypoint_vertices.shape != (len(names),):
        raise ValueError(f"{model_type}: expected {len(names)} keypoint vertices, got {keypoint_vertices.shape}")
    perm = swap_permutation(arrays["v_template"].shape[0], keypoint_vertices, [table[n] for n in names])
    out = permute_vertices(arrays, perm)
    if model_type != "mano":
        out["keypoint_vertex_ids"] = np.asarray([table[n] for n in names], dtype=np.int64)
    return out
