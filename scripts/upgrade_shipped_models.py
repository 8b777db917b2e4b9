"""Bring model files of an earlier build to what the current builder writes, without the 13-minute rebuild.

Applies the smplx-table vertex order (open_model.vertex_order), writes zeros of the shape directions as
+0.0 (the writers' ``_pad_dirs`` now does), adds ``joint2num``/``part2num`` to the SMPL-X files and
writes SMPL's plain-numpy ``.pkl`` beside its ``.npz``, through the builder's own writer
functions, in place. The builder (python -m human_body_prior.open_model.build) does all of this itself.
Idempotent.

    python scripts/upgrade_shipped_models.py support_data/body_models
"""

import sys
from pathlib import Path

import numpy as np

from human_body_prior.body_model.model_io import load_model_file
from human_body_prior.open_model.landmarks import KEYPOINT_NAMES
from human_body_prior.open_model.vertex_order import MANO_FINGERTIPS, reorder_for_table
from human_body_prior.open_model.writers import _name_table, save_npz_atomic, save_pickle_atomic


def _load(path):
    arrays = load_model_file(path, required=())
    arrays["shapedirs"] = arrays["shapedirs"] + arrays["shapedirs"].dtype.type(0)  # -0.0 -> +0.0
    return arrays


def _match(points, reference, atol=1e-9):
    """Index into ``reference`` of each of ``points`` (the same positions, exactly up to rounding)."""
    order = np.lexsort(reference.T)
    keys = reference[order]
    found = np.empty(len(points), dtype=np.int64)
    for i, p in enumerate(points):
        d = np.abs(keys - p).max(1)
        j = int(np.argmin(d))
        if d[j] > atol:
            raise ValueError(f"vertex {i} at {p} has no counterpart in the reference mesh")
        found[i] = order[j]
    return found


def main(folder):
    folder = Path(folder)
    for gender in ("NEUTRAL", "FEMALE", "MALE"):
        smplx = _load(folder / "smplx" / f"SMPLX_{gender}.npz")
        body_v, body_kp = smplx["v_template"], smplx["keypoint_vertex_ids"]
        for model_type, rel in (("smplx", f"smplx/SMPLX_{gender}.npz"), ("smplh", f"smplh/SMPLH_{gender}.npz"),
                                ("smpl", f"smpl/SMPL_{gender}.npz")):
            arrays = _load(folder / rel)
            # the same mesh as the SMPL-X file: find each keypoint vertex by its position
            kp = _match(body_v[body_kp], arrays["v_template"])
            if model_type == "smpl":
                arrays["keypoint_vertex_ids"] = kp
            if model_type == "smplx":
                arrays.update(joint2num=_name_table("smplx"), part2num=_name_table("smplx"))
            arrays = reorder_for_table(arrays, model_type, kp)
            save_npz_atomic(folder / rel, arrays)
            print(f"{rel}: reordered for smplx's {model_type} table")
            if model_type == "smpl":
                save_pickle_atomic((folder / rel).with_suffix(".pkl"), arrays)
                print(f"{rel[:-4]}.pkl: written")
        if gender != "NEUTRAL":
            continue
        wrist = {n: smplx["J_regressor"][i] @ body_v for n, i in (("left", 20), ("right", 21))}
        for side in ("left", "right"):
            rel = f"mano/MANO_{side.upper()}.npz"
            arrays = _load(folder / rel)
            tips = body_kp[[KEYPOINT_NAMES.index(side[0] + f) for f in MANO_FINGERTIPS]]
            # MANO was cut from the neutral body and shifted so its wrist joint is at the origin
            kp = _match(body_v[tips] - wrist[side], arrays["v_template"], atol=1e-7)
            save_npz_atomic(folder / rel, reorder_for_table(arrays, "mano", kp))
            print(f"{rel}: reordered for smplx's mano table")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "support_data/body_models")
