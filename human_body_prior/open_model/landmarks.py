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


# A point this close (metres, in the XY projection) to a triangle's edge counts as on the triangle, and
# hits this close in depth to the front-most one are the same surface point. Both sit far above float64
# rounding (about 1e-17 m here; 1e-11 m between CPUs) and far below any real gap on the face (micrometres
# and up), so rounding cannot change which triangles a point hits.
EDGE_TOL_M = 1e-8
DEPTH_TOL_M = 1e-8


def _cast(points_xy: np.ndarray, verts: np.ndarray, faces: np.ndarray, shrink: bool = False):
    """Front-most triangle under each (x, y) point, looking along -Z, and its barycentrics.

    points_xy (P, 2) and verts (V, 3) in metres, faces (F, 3) vertex indices. Returns the face
    indices (P,) into ``faces`` and the barycentrics (P, 3), each row non-negative and summing to 1.
    With ``shrink``, a point beyond the silhouette is pulled toward the face centre until
    it lands on the mesh."""
    tri = verts[faces]  # (F, 3, 3)
    idx_out, bary_out = [], []
    for p in points_xy:
        found = None
        for _ in range(60 if shrink else 1):
            found = _cast_one(p, tri)
            if found is not None:
                break
            p = p * np.array([0.97, 1.0])
        if found is None:
            raise ValueError(f"landmark at {p} misses the face mesh")
        idx_out.append(found[0])
        bary_out.append(found[1])
    return np.asarray(idx_out, dtype=np.int64), np.asarray(bary_out)


def _edge_distances(p: np.ndarray, tri_xy: np.ndarray):
    """Barycentrics (F, 3) of point p (2,) in each projected triangle tri_xy (F, 3, 2), metres,
    the signed distances (F, 3) in metres from p to each triangle's edges (column k: the edge
    opposite corner k; positive inside, whatever the winding), and a mask (F,) of the triangles
    that are not degenerate in the projection (their barycentrics and distances are 0 there)."""
    # edge k runs between the two corners other than k
    start = tri_xy[:, [1, 2, 0]]
    edge = tri_xy[:, [2, 0, 1]] - start  # (F, 3, 2)
    rel = p - start
    cross = edge[..., 0] * rel[..., 1] - edge[..., 1] * rel[..., 0]  # (F, 3), twice the sub-areas
    den = cross.sum(1)  # twice the signed area of the triangle
    ok = np.abs(den) > 1e-14
    safe = np.where(ok, den, 1.0)[:, None]
    bary = np.where(ok[:, None], cross / safe, 0.0)
    length = np.linalg.norm(edge, axis=2)
    dist = np.where(ok[:, None], cross * np.sign(safe) / np.where(length > 0, length, 1.0), 0.0)
    return bary, dist, ok


def _cast_one(p: np.ndarray, tri: np.ndarray):
    """(face, barycentrics (3,)) of the front-most triangle of tri (F, 3, 3), metres, containing
    point p (2,) in XY, or None.

    A point on a shared edge or vertex (within ``EDGE_TOL_M``) is in every triangle around it,
    and those triangles reach it at the same depth (within ``DEPTH_TOL_M``); of them the one
    with the lowest index is taken, so the choice does not depend on float rounding. The
    barycentrics are clipped to be non-negative and renormalised."""
    bary, dist, ok = _edge_distances(p, tri[:, :, :2])
    hit = ok & (dist.min(1) >= -EDGE_TOL_M)
    if not hit.any():
        return None
    z = np.einsum("fk,fk->f", bary, tri[:, :, 2])
    front = np.where(hit, z, -np.inf)
    f = int(np.flatnonzero(front >= front.max() - DEPTH_TOL_M)[0])
    b = np.clip(bary[f], 0.0, None)
    return f, (b / b.sum()).tolist()


YAWS_DEG = np.linspace(-39.0, 39.0, 79)  # (79,) the dynamic contour's head turns, degrees about +Y


def _face_frame(verts: np.ndarray, faces: np.ndarray, joints: np.ndarray):
    """The rest-pose mesh in the face frame: vertices (V, 3) in metres relative to the point
    between the eye joints, the indices (H,) into ``faces`` of the head's faces (all corners above
    the neck joint), and the layout unit in metres (half the eye distance)."""
    eye_l, eye_r = joints[_IDX["left_eye_smplhf"]], joints[_IDX["right_eye_smplhf"]]
    local = verts - 0.5 * (eye_l + eye_r)
    head = np.flatnonzero(verts[faces][:, :, 1].min(1) > joints[_IDX["neck"]][1])
    return local, head, 0.5 * float(np.linalg.norm(eye_l - eye_r))


def _static_landmarks(local: np.ndarray, faces: np.ndarray, head: np.ndarray, unit: float):
    """lmk_faces_idx (51,) into ``faces`` and lmk_bary_coords (51, 3) from the face frame
    (``_face_frame``'s vertices (V, 3) in metres, head face indices (H,) and unit in metres)."""
    idx, bary = _cast(_static_layout() * unit, local, faces[head])
    return head[idx], bary


def _contour_at_yaw(local: np.ndarray, faces: np.ndarray, head: np.ndarray, unit: float,
                    yaw_deg: float):
    """Face indices (17,) into ``faces`` and barycentrics (17, 3) of the jaw contour seen with
    the head turned by ``yaw_deg`` degrees about +Y (face frame as in ``_static_landmarks``)."""
    yaw = np.deg2rad(yaw_deg)
    c, s = np.cos(yaw), np.sin(yaw)
    rot = np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])
    idx, bary = _cast(_contour_layout() * unit, local @ rot.T, faces[head], shrink=True)
    return head[idx], bary


def face_landmarks(verts: np.ndarray, faces: np.ndarray, joints: np.ndarray):
    """lmk_faces_idx (51,), lmk_bary_coords (51, 3), dynamic_lmk_faces_idx (79, 17),
    dynamic_lmk_bary_coords (79, 17, 3) on the rest-pose mesh (verts (V, 3) in metres, faces
    (F, 3), joints (55, 3) in metres in SMPL-X order); face indices are into ``faces``."""
    local, head, unit = _face_frame(verts, faces, joints)
    lmk_idx, lmk_bary = _static_landmarks(local, faces, head, unit)
    contours = [_contour_at_yaw(local, faces, head, unit, yaw) for yaw in YAWS_DEG]
    dyn_idx = np.stack([i for i, _ in contours])
    dyn_bary = np.stack([b for _, b in contours])
    return lmk_idx, lmk_bary, dyn_idx, dyn_bary


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
