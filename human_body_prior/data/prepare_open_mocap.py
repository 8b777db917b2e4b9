"""Turn the project's open motion capture (``../shared/mocap``) into VPoser train/vald/test data.

    python -m human_body_prior.data.prepare_open_mocap --mocap-dir ../shared/mocap \\
        --work-dir /tmp/mocap_work --out-dir /tmp/vposer_data [--bm-path SMPLX.npz]

Steps: (1) extract the four archives into ``<work-dir>/raw``, each atomically (into a temporary
folder, take count checked, marker ``.extracted.json`` written, then renamed into place; a complete
folder is kept, an incomplete one is extracted again);
(2) retarget every take onto the SMPL-X model (default: the shipped open neutral model), each
performer's knees and feet calibrated over all of its takes (``take_performer``), into AMASS-style files ``<work-dir>/amass/<set>/...npz``, at 30 fps (takes recorded faster are resampled;
salsa is 60 fps although its header says 120); (3) split by take and write the VPoser tensors with
``prepare_vposer_takes`` into ``<out-dir>/{train,vald,test}``, plus ``<out-dir>/splits.json``.

Split rule (deterministic, seed 0): every group below is split on its own, so every set is in every
split; in each group about 10% of the units go to vald, 10% to test (at least one each), the rest to
train. A unit is one take, except: salsa takes ``k`` and ``k+15`` are the two partners of one dance
and stay together; ReActIdle takes with the same participant number (``003_acted``, ``003_genuine``)
stay together. Groups: cmu_daz/salsa, cmu_daz/martial, cmu_daz/indian, cmu_daz_atelier, cmu_iclone,
reactidle. ``cmu_daz/standard.bvh`` (a 3-frame rest pose) is not a take and is skipped.
"""

from __future__ import annotations

import errno
import gzip
import json
import logging
import os
import re
import shutil
import sys
import tarfile
import tempfile
from pathlib import Path

import numpy as np

from human_body_prior import cli
from human_body_prior.data.bvh import MAX_FPS, MIN_FPS, BVHError
from human_body_prior.data.bvh2amass import (
    convert_take,
    is_bvh,
    is_complete_take,
    output_name,
)
from human_body_prior.data.performer import calibrate_performers
from human_body_prior.data.prepare_data import prepare_vposer_takes
from human_body_prior.data.retarget import Retargeter
from human_body_prior.files.atomic_io import (
    atomic_write_bytes,
    replace_dir,
    save_npz_atomic,
)

ARCHIVES = ("cmu_daz", "cmu_daz_atelier", "cmu_iclone", "reactidle")
TARGET_FPS = 30.0
# True frame rates where a header is wrong (see ../shared/mocap/README.md and cmu_daz/readme.txt).
FPS_OVERRIDES = {"cmu_daz/salsa": 60.0}
SKIP = {"cmu_daz/standard.bvh"}


EXTRACTED_MARKER = ".extracted.json"  # written last into each extracted folder: {"archive", "bvh_files"}


def _count_bvh(folder: Path) -> int:
    return sum(1 for p in folder.rglob("*") if p.is_file() and is_bvh(p))


def _extracted_ok(folder: Path) -> tuple[bool, str]:
    """(complete?, why not) for an extracted archive folder, from its marker and the files there."""
    marker = folder / EXTRACTED_MARKER
    if not marker.is_file():
        return False, f"{folder} has no {EXTRACTED_MARKER} (an extraction that did not finish?)"
    try:
        expected = int(json.loads(marker.read_text())["bvh_files"])
    except (OSError, ValueError, KeyError, TypeError) as e:
        return False, f"{marker} is unreadable ({e})"
    found = _count_bvh(folder)
    if found != expected:
        return False, f"{folder} holds {found} of {expected} BVH takes"
    return True, ""


def _extract_one(archive: Path, raw_dir: Path, name: str) -> None:
    """Extract ``archive`` into a temporary folder beside ``raw_dir/name``, check the take count, write
    the marker and only then put the folder in place: a killed run leaves no partial ``raw_dir/name``."""
    tmp = Path(tempfile.mkdtemp(dir=raw_dir, prefix=f".{name}.extracting-"))
    try:
        expected = 0
        with tarfile.open(archive, "r:xz") as tf:
            for member in tf:  # one pass over the compressed stream
                tf.extract(member, tmp, filter="data")
                if member.isfile() and is_bvh(Path(member.name)):
                    expected += 1
        folder = tmp / name
        if not folder.is_dir():
            raise ValueError(f"{archive} has no top-level folder {name}/")
        found = _count_bvh(folder)
        if found != expected or expected == 0:
            raise ValueError(f"{archive}: extracted {found} BVH takes of the {expected} in the archive")
        atomic_write_bytes(folder / EXTRACTED_MARKER, json.dumps({"archive": archive.name, "bvh_files": expected}).encode())
        replace_dir(folder, raw_dir / name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def extract_archives(mocap_dir, raw_dir, names=ARCHIVES) -> None:
    """Extract each NAME.tar.xz of ``mocap_dir`` (NAME in ``names``, default all four) into
    ``raw_dir/NAME``, atomically per archive.

    A folder that is complete (its marker and BVH count agree) is kept; an incomplete one (killed
    extraction, deleted takes, or an extraction by a version without markers) is extracted again.
    """
    raw_dir = Path(raw_dir)
    raw_dir.mkdir(parents=True, exist_ok=True)
    for stale in raw_dir.glob(".*.extracting-*"):  # left by a killed run
        shutil.rmtree(stale, ignore_errors=True)
    for name in names:
        archive = Path(mocap_dir) / f"{name}.tar.xz"
        if (raw_dir / name).is_dir():
            ok, why = _extracted_ok(raw_dir / name)
            if ok:
                continue
            if not archive.is_file():
                raise FileNotFoundError(errno.ENOENT, f"{why}, and its archive is not there to extract it again",
                                        str(archive))
            logging.getLogger("prepare_open_mocap").warning(f"{why}: extracting {archive.name} again")
        elif not archive.is_file():
            raise FileNotFoundError(errno.ENOENT, "mocap archive not found", str(archive))
        _extract_one(archive, raw_dir, name)
    check_extracted(raw_dir, names)


def check_extracted(raw_dir, names=ARCHIVES) -> int:
    """Number of BVH takes under ``raw_dir`` (of the archives ``names``); ValueError if an archive's
    folder is missing or incomplete."""
    total = 0
    for name in names:
        folder = Path(raw_dir) / name
        if not folder.is_dir():
            raise ValueError(f"{folder} is missing; run the extraction (prepare_open_mocap) again")
        ok, why = _extracted_ok(folder)
        if not ok:
            raise ValueError(f"{why}; run prepare_open_mocap again to extract it anew")
        total += _count_bvh(folder)
    return total


def list_source_takes(raw_dir) -> list[str]:
    """Relative paths (e.g. 'cmu_daz/salsa/01.bvh') of every take."""
    raw_dir = Path(raw_dir)
    out = []
    for name in ARCHIVES:
        for p in sorted((raw_dir / name).rglob("*")):
            rel = p.relative_to(raw_dir).as_posix()
            if p.is_file() and is_bvh(p) and rel not in SKIP:
                out.append(rel)
    return out


def take_group(rel: str) -> str:
    parts = rel.split("/")
    return "/".join(parts[:2]) if parts[0] == "cmu_daz" else parts[0]


def take_unit(rel: str) -> str:
    """Takes of one unit always share a split."""
    group = take_group(rel)
    stem = Path(rel).name.split(".")[0]
    if group == "cmu_daz/salsa":
        n = int(stem)
        return f"{group}/pair{n if n <= 15 else n - 15:02d}"
    if group == "reactidle":
        m = re.match(r"(\d+)_", stem)
        return f"{group}/participant{m.group(1) if m else stem}"
    return rel


def take_performer(rel: str) -> str:
    """Who performed a take, for the knee calibration (:mod:`human_body_prior.data.anatomy`): a CMU
    subject folder, one salsa partner (takes 1-14 one dancer, 16-29 the other), a ReActIdle participant
    (acted and genuine takes alike); otherwise the take's folder."""
    group, stem = take_group(rel), Path(rel).name.split(".")[0]
    if group == "cmu_daz/salsa":
        return f"{group}/dancer{'A' if int(stem) <= 15 else 'B'}"
    if group == "reactidle":
        return take_unit(rel)
    return str(Path(rel).parent.as_posix())


def performer_calibrations(raw_dir, takes: list[str]) -> dict:
    """{performer: Calibration} over the given takes (see take_performer)."""
    by_performer = {}
    for rel in takes:
        by_performer.setdefault(take_performer(rel), []).append(str(Path(raw_dir) / rel))
    return calibrate_performers(by_performer)


def split_takes(takes: list[str], seed: int = 0, share: float = 0.1) -> dict[str, list[str]]:
    """train/vald/test lists of takes (see the module doc for the rule)."""
    groups = {}
    for t in takes:
        groups.setdefault(take_group(t), {}).setdefault(take_unit(t), []).append(t)
    out = {"train": [], "vald": [], "test": []}
    rng = np.random.default_rng(seed)
    for g in sorted(groups):
        units = sorted(groups[g])
        order = [units[i] for i in rng.permutation(len(units))]
        n = len(units)
        n_hold = max(1, int(round(share * n))) if n >= 3 else 0
        for k, u in enumerate(order):
            split = "test" if k < n_hold else "vald" if k < 2 * n_hold else "train"
            out[split].extend(groups[g][u])
    return {k: sorted(v) for k, v in out.items()}


def retarget_all(raw_dir, amass_dir, retargeter: Retargeter, takes: list[str], skip_existing=True,
                 progress=True) -> tuple[dict, list]:
    """Retarget ``takes`` into ``amass_dir``, each performer's knees calibrated over all of its takes
    (:func:`performer_calibrations`); returns ({rel: npz path}, [(rel, error)])."""
    from tqdm import tqdm

    calibrations = performer_calibrations(raw_dir, takes)
    done, failed = {}, []
    for rel in tqdm(takes, desc="retarget", disable=not progress):
        out = Path(amass_dir) / output_name(Path(rel))
        if skip_existing and is_complete_take(out):
            done[rel] = str(out)
            continue
        fps = FPS_OVERRIDES.get(take_group(rel))
        try:
            header_fps = fps or read_bvh_fps(Path(raw_dir) / rel)
            target = TARGET_FPS if header_fps > TARGET_FPS + 1e-6 else None
            arrays, _ = convert_take(str(Path(raw_dir) / rel), retargeter, fps=fps, target_fps=target,
                                     source_name=rel, calibration=calibrations[take_performer(rel)])
        except (ValueError, KeyError, OSError) as e:  # this take's own problem; the others go on
            failed.append((rel, str(e)))
            continue
        save_npz_atomic(str(out), arrays)
        done[rel] = str(out)
    return done, failed


def read_bvh_fps(path) -> float:
    """Frame rate from a BVH (or .bvh.gz) header without parsing the motion."""
    with open(path, "rb") as probe:
        gz = probe.read(2) == b"\x1f\x8b"
    with (gzip.open(path, "rb") if gz else open(path, "rb")) as fh:
        for raw in fh:
            line = raw.decode("latin-1").strip().lower()
            if line.startswith("frame time"):
                try:
                    dt = float(line.split(":", 1)[1])
                except ValueError:
                    break
                if not 1 / MAX_FPS <= dt <= 1 / MIN_FPS:
                    raise BVHError(f"{path}: Frame Time {dt!r} s is not a frame rate between {MIN_FPS:g} and "
                                   f"{MAX_FPS:g} fps")
                return 1.0 / dt
    raise BVHError(f"{path}: no valid 'Frame Time:' line")


def main(argv=None) -> int:
    ap = cli.ArgumentParser(prog="python -m human_body_prior.data.prepare_open_mocap",
                                 description=__doc__.split("\n\n")[0])
    ap.add_argument("--mocap-dir", default=os.environ.get("HBP_MOCAP_DIR", "../shared/mocap"),
                    help="folder with the mocap archives (default: $HBP_MOCAP_DIR, else ../shared/mocap)")
    ap.add_argument("--work-dir", required=True, help="extracted BVH (raw/) and retargeted takes (amass/)")
    ap.add_argument("--out-dir", required=True, help="VPoser dataset folder (train/vald/test)")
    ap.add_argument("--bm-path", default=None, help="SMPL-X model (default: shipped open neutral model)")
    ap.add_argument("--min-change-deg", type=cli.finite_float, default=2.0,
                    help="thin near-duplicate frames: keep a frame only if some body joint turned this many degrees "
                         "since the last kept one (default 2: cuts the idle set 4x, the CMU sets by 2-8%%)")
    ap.add_argument("--no-mirror", action="store_true", help="do not add mirrored copies to train")
    ap.add_argument("--redo", action="store_true", help="retarget again even where outputs exist")
    ap.add_argument("--seed", type=cli.seed, default=0)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    log = logging.getLogger("prepare_open_mocap")

    work = Path(args.work_dir)
    raw, amass = work / "raw", work / "amass"
    extract_archives(args.mocap_dir, raw)
    takes = list_source_takes(raw)
    log.info(f"{len(takes)} takes found")
    if args.bm_path is None:
        from human_body_prior.support_paths import default_body_model_path
        args.bm_path = default_body_model_path("smplx", "neutral")
    rt = Retargeter.from_model_file(args.bm_path)
    done, failed = retarget_all(raw, amass, rt, takes, skip_existing=not args.redo)
    for rel, msg in failed:
        log.error(f"FAILED {rel}: {msg}")
    splits = split_takes(sorted(done), seed=args.seed)
    split_files = {k: [done[t] for t in v] for k, v in splits.items()}
    stats = prepare_vposer_takes(split_files, args.out_dir, logger=log, min_change_deg=args.min_change_deg,
                                 mirror_splits=() if args.no_mirror else ("train",))
    info = {"splits": splits, "stats": stats, "bm_path": os.path.abspath(args.bm_path), "seed": args.seed,
            "target_fps": TARGET_FPS, "fps_overrides": FPS_OVERRIDES, "failed": failed}
    atomic_write_bytes(str(Path(args.out_dir) / "splits.json"), json.dumps(info, indent=1).encode())
    log.info(json.dumps(stats))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(cli.run(main))
