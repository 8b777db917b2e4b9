"""Anatomical corrections applied to retargeted poses: the shoulder girdle driven by the arm, and knees
re-zeroed to the performer's full extension.

**Shoulder girdle.** Skeletons solved from optical markers move their clavicle joints little and in their own way (the CMU
conversions keep it near one angle whatever the arm does), while a body-surface fit such as MoSh++ moves
SMPL's collars with the arm: lowered with the arms at the sides, raised above the T-pose with the arms
overhead. Retargeted poses take the collars' mean elevation from the arm instead (the rest of the
source's collar rotation stays), by the classic rhythm of Inman,
Saunders and Abbott (1944, "Observations on the function of the shoulder joint"): in the first 30
degrees of humeral elevation the girdle stays put (the setting phase); beyond, the girdle contributes
one degree for every two of the glenohumeral joint, a third of the elevation. SMPL's zero pose is a
T-pose, so the collar's rotation is the girdle elevation relative to that of the model's rest arm.
The upper arm keeps its world orientation (the shoulder joint absorbs the change), so the elbow and
everything below it keep their orientations; the shoulder joint moves with the collar.

**Feet.** The same skeletons put the toe joint at their own height above the ankle: standing flat on
the ground, the CMU iClone feet point 6-10 degrees less downwards than the model's rest foot.
:func:`pitch_feet` turns each foot about its lateral axis by a performer's constant so that, on the
frames where the performer stands flat-footed, the foot points as the model's rest foot does (the
model's zero pose stands flat on the ground).

**Elbows.** SMPL fits put little constant roll at the elbow (its twist about the forearm averages about
0 in MoSh++ fits). Retargeting carries a rig's arm roll down the chain, and the hinge calibration's
turn of the upper arm lands on the elbow as a constant twist (24 degrees on the CMU conversions).
:func:`untwist_elbows` takes each take's mean twist off the elbow (the forearm's and the hand's roll
follow the upper arm) and keeps its variation.

**Knees.** A marker-solved skeleton places its knee, hip and ankle centres its own way; the CMU skeletons
here never straighten the leg (their most extended frames stay 10-35 degrees bent, where people walk
and stand on nearly straight knees). :func:`straighten_knees` takes a performer's offset (how far the
skeleton's most extended frames, over all of that performer's takes, are from full extension) off every
frame's knee flexion, turning thigh and shank in the leg's plane so that the ankle stays on the line from
the hip where the source put it (feet keep their ground contact).
"""

from __future__ import annotations

import numpy as np
import torch

from human_body_prior.data.bvh import joint_world_frames
from human_body_prior.geometry.rotations import (
    axis_angle_to_matrix,
    matrix_to_axis_angle,
    rotation_between,
)
from human_body_prior.model_types.joints import SMPLX_JOINT_NAMES

SETTING_PHASE_DEG = 30.0  # humeral elevation before the girdle starts to move
GIRDLE_SHARE = 1.0 / 3.0  # the girdle's share of the elevation beyond the setting phase
_DOWN = np.array([0.0, -1.0, 0.0])  # the thorax's downward axis in the model's rest frame
_FORWARD = np.array([0.0, 0.0, 1.0])
_IDX = {n: i for i, n in enumerate(SMPLX_JOINT_NAMES)}


def girdle_elevation_deg(humeral_elevation_deg: np.ndarray) -> np.ndarray:
    """Girdle elevation (deg) above its position with the arm at the side, for humeral elevations (deg,
    0 = arm along the trunk, 90 = horizontal, 180 = overhead), any shape."""
    return GIRDLE_SHARE * np.maximum(np.asarray(humeral_elevation_deg, dtype=np.float64) - SETTING_PHASE_DEG, 0.0)


def _unit(v):
    return v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-12)


def _rotation_about(axis: np.ndarray, angle_rad: np.ndarray) -> np.ndarray:
    """(F, 3, 3) rotations by angle_rad (F,) about unit axes (F, 3)."""
    return axis_angle_to_matrix(torch.from_numpy(axis * angle_rad[:, None])).numpy()


def _angle_deg(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.degrees(np.arccos(np.clip(np.sum(_unit(a) * _unit(b), -1), -1.0, 1.0)))


def knee_flexion_deg(hip: np.ndarray, knee: np.ndarray, ankle: np.ndarray) -> np.ndarray:
    """Knee flexion (deg, 0 = straight) from joint positions (..., 3)."""
    return _angle_deg(knee - hip, ankle - knee)


def _twist_angle(R: np.ndarray, axis: np.ndarray) -> np.ndarray:
    """(F,) signed angle (rad) of the twist of rotations R (F, 3, 3) about a unit axis (R = swing twist)."""
    swing = rotation_between(torch.from_numpy(np.broadcast_to(axis, (len(R), 3)).copy()),
                             torch.from_numpy(R @ axis)).numpy()
    return matrix_to_axis_angle(torch.from_numpy(np.swapaxes(swing, -1, -2) @ R)).numpy() @ axis


def apply_girdle_rhythm(local: np.ndarray, rest_joints: np.ndarray, parents) -> dict:
    """Set each collar of the local rotations (F, 55, 3, 3) from its arm's elevation, in place.

    rest_joints (55, 3): the model's rest joints (metres, Y up, +Z forward, left at +X). The humeral
    elevation is the angle between the upper arm (shoulder -> elbow) and the thorax's (the collar's
    parent's) downward axis. The rhythm replaces the source collar's mean elevation (its turn about the
    forward axis, averaged over the take); the rest of the source's collar rotation stays (a prior
    meets real collars that turn every way). Returns {collar name: mean rhythm elevation in degrees}.
    """
    _, glob = joint_world_frames(local, np.zeros(local.shape[:-1]), parents)
    out = {}
    for side, sign in (("left", 1.0), ("right", -1.0)):
        c, s, e = (_IDX[f"{side}_{p}"] for p in ("collar", "shoulder", "elbow"))
        thorax = glob[:, parents[c]]
        arm_rest = _unit(rest_joints[e] - rest_joints[s])
        arm = np.einsum("fba,fbc,c->fa", thorax, glob[:, s], arm_rest)  # upper arm in the thorax frame
        elevation = np.degrees(np.arccos(np.clip(arm @ _DOWN, -1.0, 1.0)))
        rest = np.degrees(np.arccos(np.clip(arm_rest @ _DOWN, -1.0, 1.0)))
        g = girdle_elevation_deg(elevation) - girdle_elevation_deg(rest)
        rhythm = axis_angle_to_matrix(torch.from_numpy(np.radians(sign * g)[:, None] * _FORWARD)).numpy()
        elevation_src = _twist_angle(local[:, c], _FORWARD)  # the source collar's own elevation
        mean = np.angle(np.mean(np.exp(1j * elevation_src)))
        unraise = axis_angle_to_matrix(torch.from_numpy(np.broadcast_to(-mean * _FORWARD, (len(local), 3)).copy())).numpy()
        collar = rhythm @ unraise @ local[:, c]  # the rhythm in place of its mean elevation
        local[:, c] = collar
        local[:, s] = np.swapaxes(thorax @ collar, -1, -2) @ glob[:, s]
        out[SMPLX_JOINT_NAMES[c]] = round(float(np.mean(g)), 2)
    return out


FULL_EXTENSION_DEG = 3.0  # knee flexion of a leg at full extension (standing, heel strike)


def extension_offset_deg(flexion_deg: np.ndarray, percentile: float = 1.0) -> float:
    """How far a performer's most extended knee frames are from full extension: the ``percentile`` of
    the knee flexions (deg, any shape: all frames of both knees of all the performer's takes) minus
    FULL_EXTENSION_DEG, never negative."""
    flexion = np.asarray(flexion_deg, dtype=np.float64).ravel()
    flexion = flexion[np.isfinite(flexion)]
    if flexion.size == 0:
        return 0.0
    return max(float(np.percentile(flexion, percentile)) - FULL_EXTENSION_DEG, 0.0)


def straighten_knees(local: np.ndarray, rest_joints: np.ndarray, parents, offset_deg: float) -> None:
    """Take ``offset_deg`` off every knee's flexion (never below straight) in local rotations (F, 55, 3, 3),
    in place. Thigh and shank turn in the leg's plane so that the ankle stays on its line from the hip;
    the foot keeps its world orientation."""
    if offset_deg <= 0:
        return
    _, glob = joint_world_frames(local, np.zeros(local.shape[:-1]), parents)
    J = np.asarray(rest_joints, dtype=np.float64)
    for side in ("left", "right"):
        h, k, a = (_IDX[f"{side}_{p}"] for p in ("hip", "knee", "ankle"))
        thigh = glob[:, h] @ (J[k] - J[h])
        shank = glob[:, k] @ (J[a] - J[k])
        l1, l2 = np.linalg.norm(J[k] - J[h]), np.linalg.norm(J[a] - J[k])
        phi = np.radians(_angle_deg(thigh, shank))
        phi_new = np.maximum(phi - np.radians(offset_deg), 0.0)
        normal = np.cross(shank, thigh)
        bent = np.linalg.norm(normal, axis=-1) > 1e-9 * l1 * l2
        normal = _unit(normal)
        alpha = np.arctan2(l2 * np.sin(phi), l1 + l2 * np.cos(phi))  # thigh's angle from the hip -> ankle line
        alpha_new = np.arctan2(l2 * np.sin(phi_new), l1 + l2 * np.cos(phi_new))
        turn_thigh = np.where(bent, alpha_new - alpha, 0.0)
        turn_shank = np.where(bent, (alpha_new - phi_new) - (alpha - phi), 0.0)
        thigh_world = _rotation_about(normal, turn_thigh) @ glob[:, h]
        shank_world = _rotation_about(normal, turn_shank) @ glob[:, k]
        local[:, h] = np.swapaxes(glob[:, parents[h]], -1, -2) @ thigh_world
        local[:, k] = np.swapaxes(thigh_world, -1, -2) @ shank_world
        local[:, a] = np.swapaxes(shank_world, -1, -2) @ glob[:, a]



def pitch_feet(local: np.ndarray, turn_deg: float) -> None:
    """Turn both feet down by ``turn_deg`` (negative: up) about their own lateral axis, in local
    rotations (F, 55, 3, 3), in place (a constant in the ankle's frame: the toes move, nothing else)."""
    if turn_deg == 0:
        return
    turn = axis_angle_to_matrix(torch.tensor([np.radians(turn_deg), 0.0, 0.0], dtype=torch.float64)).numpy()
    for side in ("left", "right"):
        a = _IDX[f"{side}_ankle"]
        local[:, a] = local[:, a] @ turn


def tilt_pelvis(local: np.ndarray, parents, turn_deg: float) -> None:
    """Tilt the pelvis forward by ``turn_deg`` (negative: back) about its lateral axis in local rotations
    (F, 55, 3, 3), in place; its children (hips, lower spine) keep their world orientations."""
    if turn_deg == 0:
        return
    turn = axis_angle_to_matrix(torch.tensor([np.radians(turn_deg), 0.0, 0.0], dtype=torch.float64)).numpy()
    local[:, 0] = local[:, 0] @ turn
    for child in np.flatnonzero(np.asarray(parents) == 0):
        local[:, child] = turn.T @ local[:, child]


def untwist_elbows(local: np.ndarray, rest_joints: np.ndarray) -> None:
    """Take each elbow's constant twist (its circular mean over the take, about the rest forearm elbow
    -> wrist) off its local rotations (F, 55, 3, 3), in place; the frame-to-frame variation stays, as
    real forearms roll (a prior trained on elbows that never twist reads real ones badly: VPoser v1
    encoded real poses 96.6 mm off, 45 mm once their elbows were untwisted too). Everything below
    turns with the elbow."""
    J = np.asarray(rest_joints, dtype=np.float64)
    for side in ("left", "right"):
        e, w = _IDX[f"{side}_elbow"], _IDX[f"{side}_wrist"]
        axis = np.broadcast_to(_unit(J[w] - J[e]), (len(local), 3)).copy()
        turned = torch.from_numpy(local[:, e]) @ torch.from_numpy(axis)[..., None]
        swing = rotation_between(torch.from_numpy(axis), turned[..., 0]).numpy()
        twist = _twist_angle(local[:, e], axis[0])
        mean = np.angle(np.mean(np.exp(1j * twist)))  # signed twist (rad) of every frame, and its mean
        local[:, e] = swing @ axis_angle_to_matrix(torch.from_numpy(axis * (twist - mean)[:, None])).numpy()
