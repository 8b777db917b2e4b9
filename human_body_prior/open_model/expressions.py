"""Expression blend shapes from MakeHuman's facial expression units.

The 34 units (eyebrows, eyelids, mouth, nose, neck...) are averaged over the three race
variants, then reduced by an uncentred PCA: component k is the k-th right singular vector
scaled by its singular value / sqrt(num_units), so a coefficient of 1 is about one unit's
typical activation. Components are ordered by variance. The face does not move when
the body is T-posed, so the A-pose displacements are used unchanged.
"""

from __future__ import annotations

import numpy as np

from human_body_prior.open_model.assets import MakeHumanAssets
from human_body_prior.open_model.phenotype import RACES
from human_body_prior.open_model.shape_space import DM_TO_M

UNIT_DIR = "targets/expression/units"


def expression_units(assets: MakeHumanAssets, num_verts: int, body_count: int) -> tuple[list[str], np.ndarray]:
    """Unit names and displacements (U, body_count, 3) in metres."""
    names = [n.rsplit("/", 1)[1] for n in assets.list_dir(f"{UNIT_DIR}/{RACES[0]}")]
    if not names:
        raise FileNotFoundError(f"no expression units under {UNIT_DIR}/{RACES[0]} in the wheel")
    units = []
    for name in names:
        d = np.mean([assets.target(f"{UNIT_DIR}/{r}/{name}", num_verts) for r in RACES], axis=0)
        units.append(d[:body_count] * DM_TO_M)
    return names, np.stack(units)


def expression_basis(units: np.ndarray, num: int) -> tuple[np.ndarray, np.ndarray]:
    """(V, 3, num) expression directions and the fraction of variance each explains."""
    u_count, v, _ = units.shape
    if num > u_count:
        raise ValueError(f"asked for {num} expression components but only {u_count} units exist")
    _, sv, vt = np.linalg.svd(units.reshape(u_count, -1), full_matrices=False)
    dirs = vt[:num] * (sv[:num] / np.sqrt(u_count))[:, None]
    for k in range(num):
        if dirs[k][np.argmax(np.abs(dirs[k]))] < 0:
            dirs[k] *= -1
    dirs = dirs.T.reshape(v, 3, num)
    # the unit set is mirror-symmetric as a whole; components are symmetric or anti-symmetric,
    # so no symmetrisation is applied here
    return dirs, (sv ** 2 / np.sum(sv ** 2))[:num]
