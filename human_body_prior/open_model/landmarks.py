"""Face landmarks (SMPL-X layout) and the extra keypoint vertices smplx picks.

The 51 static landmarks follow the iBUG-68 order without the 17 contour points; the
dynamic contour has 79 yaw bins (-39..39 degrees) of 17 points. Positions are placed in a
face frame (origin between the eye joints, unit = half the eye distance, subject's right at
-X) and cast onto the mesh along -Z; for a yaw bin the head is turned first, so the contour
follows the silhouette. They are approximate, meant for fitting and visualisation.
"""

from __future__ import annotations

import numpy as np

from human_body_prior.model_types.joints import SMPLX_JOINT_NAMES

_IDX = {n: i for i, n in enumerate(SMPLX_JOINT_NAMES)}
_MOUTH_Y = -2.2


def _static_layout() -> np.ndarray:
    """(51, 2) iBUG landmarks 17..67 in the face frame."""
    brow_r = [(-1.75, 0.45), (-1.4, 0.7), (-1.0, 0.8), (-0.6, 0.75), (-0.25, 0.65)]
    brow_l = [(-x, y) for x, y in reversed(brow_r)]
    bridge = [(0.0, 0.0), (0.0, -0.35), (0.0, -0.7), (0.0, -1.05)]
    nose = [(-0.45, -1.3), (-0.25, -1.4), (0.0, -1.45), (0.25, -1.4), (0.45, -1.3)]
    eye_r = [(-1.45, 0.0), (-1.15, 0.15), (-0.8, 0.15), (-0.5, 0.0), (-0.8, -0.12), (-1.15, -0.12)]
    eye_l = [(0.5, 0.0), (0.8, 0.15), (1.15, 0.15), (1.45, 0.0), (1.15, -0.12), (0.8, -0.12)]
    m = _MOUTH_Y
    outer = [(-0.75, m), (-0.5, m + 0.2), (-0.2, m + 0.28), (0.0, m + 0.25), (0.2, m + 0.28),
             (0.5, m + 0.2), (0.75, m), (0.5, m - 0.25), (0.2, m - 0.35), (0.0, m - 0.37),
             (-0.2, m - 0.35), (-0.5, m - 0.25)]
    inner = [(-0.65, m), (-0.2, m + 0.07), (0.0, m + 0.07), (0.2, m + 0.07), (0.65, m),
             (0.2, m - 0.07), (0.0, m - 0.07), (-0.2, m - 0.07)]
    return np.asarray(brow_r + brow_l + bridge + nose + eye_r + eye_l + outer + inner)


def _contour_layout() -> np.ndarray:
    """(17, 2) jaw contour from the subject's right ear over the chin to the left ear."""
    theta = np.linspace(np.pi, 2 * np.pi, 17)
    return np.stack([1.9 * np.cos(theta), -0.3 + 3.1 * np.sin(theta)], axis=1)


def _cast(points_xy: np.ndarray, verts: np.ndarray, faces: np.ndarray, shrink: bool = False):
    """Front-most triangle under each (x, y) point, looking along -Z, and its barycentrics.

    With ``shrink``, a point beyond the silhouette is pulled toward the face centre until
    it lands on the mesh."""
    tri = verts[faces]  # (F, 3, 3)
    a, b, c = tri[:, 0, :2], tri[:, 1, :2], tri[:, 2, :2]
    idx_out, bary_out = [], []
    for p in points_xy:
        found = None
        for _ in range(60 if shrink else 1):
            found = _cast_one(p, a, b, c, tri)
            if found is not None:
                break
            p = p * np.array([0.97, 1.0])
        if found is None:
            raise ValueError(f"landmark at {p} misses the face mesh")
        idx_out.append(found[0])
        bary_out.append(found[1])
    return np.asarray(idx_out, dtype=np.int64), np.asarray(bary_out)


def _cast_one(p, a, b, c, tri):
    """(face, barycentrics) of the front-most triangle containing point p in XY, or None."""
    v0, v1, v2 = b - a, c - a, p - a
    den = v0[:, 0] * v1[:, 1] - v1[:, 0] * v0[:, 1]
    ok = np.abs(den) > 1e-14
    den = np.where(ok, den, 1.0)
    l1 = (v2[:, 0] * v1[:, 1] - v1[:, 0] * v2[:, 1]) / den
    l2 = (v0[:, 0] * v2[:, 1] - v2[:, 0] * v0[:, 1]) / den
    l0 = 1 - l1 - l2
    hit = ok & (l0 >= 0) & (l1 >= 0) & (l2 >= 0)
    if not hit.any():
        return None
    z = l0 * tri[:, 0, 2] + l1 * tri[:, 1, 2] + l2 * tri[:, 2, 2]
    f = int(np.argmax(np.where(hit, z, -np.inf)))
    return f, [l0[f], l1[f], l2[f]]


def face_landmarks(verts: np.ndarray, faces: np.ndarray, joints: np.ndarray):
    """lmk_faces_idx (51,), lmk_bary_coords (51, 3), dynamic_lmk_faces_idx (79, 17),
    dynamic_lmk_bary_coords (79, 17, 3) on the rest-pose mesh (verts (V, 3), faces (F, 3))."""
    eye_l, eye_r = joints[_IDX["left_eye_smplhf"]], joints[_IDX["right_eye_smplhf"]]
    origin = 0.5 * (eye_l + eye_r)
    unit = 0.5 * np.linalg.norm(eye_l - eye_r)
    neck_y = joints[_IDX["neck"]][1]
    head_faces = faces[verts[faces][:, :, 1].min(1) > neck_y]
    local = verts - origin
    to_xy = lambda layout: layout * unit
    lmk_idx, lmk_bary = _cast(to_xy(_static_layout()), local, head_faces)
    dyn_idx, dyn_bary = [], []
    for yaw in np.deg2rad(np.linspace(-39.0, 39.0, 79)):
        c, s = np.cos(yaw), np.sin(yaw)
        rot = np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])
        i, b = _cast(to_xy(_contour_layout()), local @ rot.T, head_faces, shrink=True)
        dyn_idx.append(i)
        dyn_bary.append(b)
    face_index = {tuple(f): k for k, f in enumerate(map(tuple, faces))}
    remap = lambda idx: np.asarray([face_index[tuple(head_faces[i])] for i in idx.ravel()]).reshape(idx.shape)
    return remap(lmk_idx), lmk_bary, remap(np.stack(dyn_idx)), np.stack(dyn_bary)


KEYPOINT_NAMES = ["nose", "reye", "leye", "rear", "lear", "rthumb", "rindex", "rmiddle", "rring",
                  "rpinky", "lthumb", "lindex", "lmiddle", "lring", "lpinky", "LBigToe",
                  "LSmallToe", "LHeel", "RBigToe", "RSmallToe", "RHeel"]


def keypoint_vertices(verts: np.ndarray, weights: np.ndarray, joints: np.ndarray,
                      vert_mirror: np.ndarray) -> np.ndarray:
    """(21,) vertex indices for smplx's extra keypoints, in ``KEYPOINT_NAMES`` order."""
    owner = np.argmax(weights, axis=1)
    head = joints[_IDX["head"]]
    eye = joints[_IDX["left_eye_smplhf"]]
    unit = np.linalg.norm(eye - joints[_IDX["right_eye_smplhf"]])
    out = {}
    front = verts[:, 2] - head[2]
    mid = np.abs(verts[:, 0]) < 0.004
    out["nose"] = int(np.argmax(np.where(mid & (verts[:, 1] > joints[_IDX["neck"]][1]), front, -np.inf)))
    out["leye"] = int(np.argmin(np.linalg.norm(verts - (eye + np.array([0, 0, 0.25 * unit])), axis=1)))
    ear_band = (np.abs(verts[:, 1] - (eye[1] - 0.3 * unit)) < 0.4 * unit) & (owner == _IDX["head"])
    out["lear"] = int(np.argmax(np.where(ear_band, verts[:, 0], -np.inf)))
    for short, finger in (("thumb", "thumb"), ("index", "index"), ("middle", "middle"),
                          ("ring", "ring"), ("pinky", "pinky")):
        j3, j2 = _IDX[f"left_{finger}3"], _IDX[f"left_{finger}2"]
        direction = joints[j3] - joints[j2]
        score = np.where(owner == j3, (verts - joints[j3]) @ direction, -np.inf)
        out[f"l{short}"] = int(np.argmax(score))
    foot = joints[_IDX["left_foot"]]
    ankle = joints[_IDX["left_ankle"]]
    on_foot = owner == _IDX["left_foot"]
    out["LBigToe"] = int(np.argmax(np.where(on_foot & (verts[:, 0] < foot[0]), verts[:, 2], -np.inf)))
    out["LSmallToe"] = int(np.argmax(np.where(on_foot & (verts[:, 0] > foot[0] + 0.02), verts[:, 2], -np.inf)))
    low_ankle = (owner == _IDX["left_ankle"]) & (verts[:, 1] < ankle[1] - 0.03)
    out["LHeel"] = int(np.argmin(np.where(low_ankle, verts[:, 2], np.inf)))
    for name in list(out):
        if name == "nose":
            continue
        right = ("R" + name[1:]) if name[0] == "L" else ("r" + name[1:])
        out[right] = int(vert_mirror[out[name]])
    return np.asarray([out[n] for n in KEYPOINT_NAMES], dtype=np.int64)
