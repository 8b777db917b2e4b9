"""A performer's calibration, read off all of its takes: how its skeleton's knees and feet sit against
the body model's (:mod:`human_body_prior.data.anatomy` applies it).

The source skeleton's own joints are read (no body model, no fit): the knee flexion of every frame; the
pitch of the ankle -> toe line on the frames where both joints of a foot are on the ground (within
GROUND_SHARE of the leg's length above their lowest point in the take); and the forward tilt of the
pelvis on upright frames (trunk within UPRIGHT_DEG of vertical, knees within STRAIGHT_DEG of the
performer's most extended). People stand with their pelvis tilted within about TILT_RANGE_DEG of one
another (sagittal pelvic tilt in standing: about 13 +- 5 degrees between adults), and the model's zero
pose stands upright; a skeleton whose upright pelvis sits further from the zero pose than that (a CMU
subject's stands 21 degrees forward, the others' within 7) tilts its pelvis bone its own way, and the
excess is turned back.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from human_body_prior.data.anatomy import extension_offset_deg, knee_flexion_deg
from human_body_prior.data.bvh import BVHError, bvh_forward_kinematics, read_bvh
from human_body_prior.data.retarget import reference_pose, world_axes
from human_body_prior.data.skeleton_maps import resolve_skeleton

GROUND_SHARE = 0.03  # a foot is flat on the ground when ankle and toe are this share of the leg above their lowest
UPRIGHT_DEG = 20.0  # trunk (pelvis -> neck) this close to vertical
STRAIGHT_DEG = 20.0  # knees this close to the performer's most extended
TILT_RANGE_DEG = 10.0  # upright pelvis tilts within this of the zero pose are the person's own


@dataclass(frozen=True)
class Calibration:
    """knee_offset_deg: taken off every knee flexion; flat_foot_pitch_deg: the source's ankle -> toe
    elevation (deg, model axes) when standing flat-footed, None when no such frame was seen;
    pelvis_tilt_deg: the median forward tilt of the source pelvis on upright frames (None: none seen);
    pelvis_turn_deg: how far the pelvis is tilted forward on retargeting (the excess over TILT_RANGE_DEG)."""

    knee_offset_deg: float = 0.0
    flat_foot_pitch_deg: float | None = None
    pelvis_tilt_deg: float | None = None
    pelvis_turn_deg: float = 0.0


@dataclass(frozen=True)
class TakeMeasures:
    """knee (F, 2) flexion (deg); flat_pitch (N,) ankle -> toe elevations (deg) of flat-footed frames;
    pelvis_tilt (F,) forward tilt of the pelvis (deg); trunk (F,) angle of pelvis -> neck from vertical."""

    knee: np.ndarray
    flat_pitch: np.ndarray
    pelvis_tilt: np.ndarray
    trunk: np.ndarray


def take_measures(bvh, skeleton="auto") -> TakeMeasures:
    """Knee flexions and flat-footed foot pitches of one parsed BVH take."""
    sk = resolve_skeleton(skeleton, bvh.names, bvh.source)
    jm = sk.joint_map
    first = {name: bvh.index(src) for name, src in jm.items()}
    P, G = bvh_forward_kinematics(bvh)
    P_ref, G_ref = reference_pose(bvh, sk)
    C = world_axes(P_ref, first)
    P = P @ C.T  # model axes: Y up
    at = lambda name: P[:, first[name]]  # noqa: E731
    knee = np.stack([knee_flexion_deg(at(f"{s}_hip"), at(f"{s}_knee"), at(f"{s}_ankle")) for s in ("left", "right")], 1)
    pitches = []
    for s in ("left", "right"):
        if f"{s}_foot" not in first:
            continue
        ankle, toe = at(f"{s}_ankle"), at(f"{s}_foot")
        leg = np.linalg.norm(at(f"{s}_knee") - at(f"{s}_hip"), axis=-1) + np.linalg.norm(ankle - at(f"{s}_knee"), axis=-1)
        tol = GROUND_SHARE * np.median(leg)
        flat = (ankle[:, 1] < ankle[:, 1].min() + tol) & (toe[:, 1] < toe[:, 1].min() + tol)
        d = toe[flat] - ankle[flat]
        pitches.append(np.degrees(np.arctan2(d[:, 1], np.hypot(d[:, 0], d[:, 2]))))
    pelvis = C @ G[:, first["pelvis"]] @ G_ref[first["pelvis"]].T @ C.T  # turn from the reference, model axes
    up, fwd = pelvis[:, :, 1], pelvis[:, :, 2]
    fwd_h = fwd * np.array([1.0, 0.0, 1.0])
    fwd_h /= np.maximum(np.linalg.norm(fwd_h, axis=-1, keepdims=True), 1e-12)
    tilt = np.degrees(np.arctan2(np.sum(up * fwd_h, -1), up[:, 1]))
    trunk_dir = at("neck") - at("pelvis")
    trunk = np.degrees(np.arccos(np.clip(trunk_dir[:, 1] / np.linalg.norm(trunk_dir, axis=-1), -1.0, 1.0)))
    return TakeMeasures(knee, np.concatenate(pitches) if pitches else np.zeros(0), tilt, trunk)


def calibrate(paths, skeleton="auto", read=read_bvh) -> Calibration:
    """A performer's Calibration from all of its BVH takes (paths); takes that cannot be read are left
    out (converting them reports the error)."""
    measures = []
    for path in paths:
        try:
            measures.append(take_measures(read(path), skeleton))
        except (BVHError, ValueError, KeyError, OSError):
            continue
    if not measures:
        return Calibration()
    knee = np.concatenate([m.knee for m in measures])
    pitch = np.concatenate([m.flat_pitch for m in measures])
    offset = extension_offset_deg(knee)
    upright = (np.concatenate([m.trunk for m in measures]) < UPRIGHT_DEG) & (knee.max(1) < offset + STRAIGHT_DEG)
    tilt = np.concatenate([m.pelvis_tilt for m in measures])[upright]
    if not tilt.size:
        return Calibration(round(offset, 2), round(float(np.median(pitch)), 2) if pitch.size else None)
    tilt = float(np.median(tilt))
    return Calibration(round(offset, 2), round(float(np.median(pitch)), 2) if pitch.size else None, round(tilt, 2),
                       round(float(np.clip(tilt, -TILT_RANGE_DEG, TILT_RANGE_DEG)) - tilt, 2))


def calibrate_performers(paths_by_performer: dict, skeleton="auto") -> dict:
    """{performer: Calibration} for {performer: [BVH paths]}."""
    return {performer: calibrate(paths, skeleton) for performer, paths in paths_by_performer.items()}
