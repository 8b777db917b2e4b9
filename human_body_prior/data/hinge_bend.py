"""When a knee or elbow counts as bent: the package's one threshold for "does the hinge bend the
anatomical way", and the bend angle it is applied to.

A hinge within ``STRAIGHT_TOL_DEG`` of straight has no decided bending direction: rigs, SMPL's zero pose
(the knee rests 5 degrees bent, the forearm 5.4 degrees off the upper arm's line) and the human
hyperextension of a few degrees all live there. So, with the one number:

- a hinge bends the anatomical way unless it is bent the wrong way by more than it
  (:func:`human_body_prior.evaluation.hinges.anatomical_share`: signed flexion >= -STRAIGHT_TOL_DEG);
- only frames bent more than it show which way a hinge bends: they are the ones judged by
  :func:`human_body_prior.evaluation.retarget_quality.bend_direction_share` and the ones the
  retargeter's hinge calibration fits the bending plane to (``Retargeter._calibrate_hinge_twist``).

Two angles are measured, because they answer different questions: :func:`bend_deg` is unsigned (how far
from straight, in any direction: it selects the frames whose direction can be read), the signed flexion
of ``evaluation.hinges.hinge_angles`` is measured in the hinge's plane (which way, and how far sideways).
"""

import numpy as np

STRAIGHT_TOL_DEG = 15.0


def bend_deg(lower_dirs: np.ndarray, upper_dir: np.ndarray) -> np.ndarray:
    """Bend of a hinge in degrees, 0 for a straight limb: the angle between the upper bone's unit
    direction upper_dir (3,) and the lower bone's unit directions lower_dirs (..., 3), both in the
    upper bone's frame -> (...,)."""
    return np.degrees(np.arccos(np.clip(lower_dirs @ upper_dir, -1, 1)))
