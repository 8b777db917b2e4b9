"""The open body models' zero pose bone by bone, beside SMPL's template (support_data/body_models/README.md).

    python benchmarks/zero_pose_report.py [--files support_data/body_models/smplx/SMPLX_NEUTRAL.npz ...]

Per file: each limb bone's direction (elevation above the horizontal, forward, sideways away from the
midline; degrees) and the angle to SMPL's (sides averaged), the trunk's joint lines, and the line from the
sternal notch to the top of each acromion on the skin.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from human_body_prior.body_model.model_io import load_model_file  # noqa: E402
from human_body_prior.model_types.joints import SMPLX_JOINT_NAMES  # noqa: E402
from human_body_prior.open_model.rest_pose import (  # noqa: E402
    girdle_line_deg,
    smpl_direction,
)

_IDX = {n: i for i, n in enumerate(SMPLX_JOINT_NAMES)}
LIMBS = [("shoulder", "elbow"), ("elbow", "wrist"), ("hip", "knee"), ("knee", "ankle"), ("ankle", "foot"),
         ("collar", "shoulder")]
TRUNK = [("pelvis", "spine1"), ("spine1", "spine2"), ("spine2", "spine3"), ("spine3", "neck"), ("neck", "head")]


def angles(d: np.ndarray) -> str:
    """'elev / fwd / side' (deg) of a left-side direction (3,)."""
    d = d / np.linalg.norm(d)
    return " / ".join(f"{np.degrees(np.arcsin(np.clip(c, -1, 1))):+.1f}" for c in (d[1], d[2], d[0]))


def report(path: str) -> list[str]:
    data = load_model_file(path)
    J = np.asarray(data["J_regressor"], dtype=np.float64) @ np.asarray(data["v_template"], dtype=np.float64)
    lines = [f"{path}", "| bone | open model: elev / fwd / side | SMPL | apart (deg) |", "|---|---|---|---|"]
    for a, b in LIMBS:
        d = J[_IDX[f"left_{b}"]] - J[_IDX[f"left_{a}"]]
        ref = smpl_direction(b) if b != "shoulder" else None
        apart = "" if ref is None else f"{np.degrees(np.arccos(np.clip(d @ ref / np.linalg.norm(d), -1, 1))):.1f}"
        lines.append(f"| {a} -> {b} | {angles(d)} | {'' if ref is None else angles(ref)} | {apart} |")
    for a, b in TRUNK:
        d = J[_IDX[b]] - J[_IDX[a]]
        lines.append(f"| {a} -> {b} | {angles(d)} | | |")
    girdle = girdle_line_deg(np.asarray(data["v_template"], dtype=np.float64), J)
    lines.append(f"| sternal notch -> acromion (skin) | {girdle['left']:+.1f} (right {girdle['right']:+.1f}) | | |")
    return lines


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python benchmarks/zero_pose_report.py", description=__doc__.split("\n\n")[0])
    default = [str(ROOT / f"support_data/body_models/smplx/SMPLX_{g}.npz") for g in ("NEUTRAL", "FEMALE", "MALE")]
    parser.add_argument("--files", nargs="+", default=default)
    args = parser.parse_args(argv)
    for path in args.files:
        print("\n".join(report(path)) + "\n")


if __name__ == "__main__":
    main()
