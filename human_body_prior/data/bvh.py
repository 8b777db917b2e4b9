"""BVH motion files: reader, writer and forward kinematics.

A BVH file has a HIERARCHY (joints with an OFFSET from their parent, a list of CHANNELS, and
``End Site`` leaves) and a MOTION block (one line of channel values per frame). Conventions used here,
which match the common exporters (MotionBuilder, Blender, DAZ, iClone):

- Rotation channels are Euler angles in degrees, composed in the order they are listed:
  ``Zrotation Xrotation Yrotation`` means ``R = Rz @ Rx @ Ry`` (a point in the joint frame maps to the
  parent frame as ``x_parent = t + R @ x_joint``).
- The root's translation is OFFSET + its position channels; for any other joint with position
  channels the channels replace its OFFSET (exporters write the full local position there).
- Plain ``.bvh`` and gzip-compressed ``.bvh.gz`` files are read alike, up to ``MAX_BVH_BYTES`` of
  (decompressed) text, so a small gzip bomb cannot fill the memory.
- ``Frame Time`` must give a frame rate between ``MIN_FPS`` and ``MAX_FPS``; a file whose header is
  wrong is read with ``read_bvh(path, frame_time=true value)``.
- OFFSETs and channel values larger than ``MAX_BVH_VALUE`` (1e6) in magnitude are refused (file and line named).
- The hierarchy is parsed and written without recursion: any depth works.
"""

from __future__ import annotations

import gzip
import os
import zlib
from dataclasses import dataclass, field

import numpy as np
import torch

from human_body_prior.files.atomic_io import atomic_write_bytes
from human_body_prior.geometry import rotations as rotation_tools
from human_body_prior.geometry.kinematics import KinematicTree, global_transforms

_POS_CHANNELS = ("Xposition", "Yposition", "Zposition")
_ROT_CHANNELS = ("Xrotation", "Yrotation", "Zrotation")
_VALID_CHANNELS = _POS_CHANNELS + _ROT_CHANNELS

DEFAULT_MAX_BVH_BYTES = 512 << 20  # the largest BVH of ../shared/mocap is ~20 MB of text
MAX_BVH_BYTES = DEFAULT_MAX_BVH_BYTES
MAX_BVH_VALUE = 1e6  # OFFSETs and channel values: 10 km in cm, 2800 turns in degrees; more is a broken file
MIN_FPS, MAX_FPS = 0.1, 10000.0  # plausible capture rates; outside is a broken header or option


class BVHError(ValueError):
    """A malformed or truncated BVH file; the message names the file and the line."""


def check_fps(fps, what: str = "fps") -> float:
    """``fps`` as a float if it is a plausible frame rate (MIN_FPS..MAX_FPS), else ValueError naming ``what``."""
    try:
        value = float(fps)
    except (TypeError, ValueError):
        raise ValueError(f"{what}: expected a frame rate, got {fps!r}") from None
    if not MIN_FPS <= value <= MAX_FPS:  # also refuses nan and inf
        raise ValueError(f"{what} = {fps!r} fps is outside {MIN_FPS:g} to {MAX_FPS:g} fps")
    return value


@dataclass
class BVH:
    """A parsed BVH file.

    names: joint names (J,), parents: (J,) int with -1 for the root (parents come before children),
    offsets: (J, 3) rest offsets from the parent in file units, channels: per joint a tuple of channel
    names, end_sites: list of (parent joint index, offset (3,)), motion: (F, C) channel values in file
    order, frame_time: seconds per frame.
    """

    names: list[str]
    parents: np.ndarray
    offsets: np.ndarray
    channels: list[tuple[str, ...]]
    end_sites: list[tuple[int, np.ndarray]]
    motion: np.ndarray
    frame_time: float
    source: str = ""
    _channel_start: np.ndarray = field(init=False, repr=False)

    def __post_init__(self):
        self.parents = np.asarray(self.parents, dtype=np.int64)
        self.offsets = np.asarray(self.offsets, dtype=np.float64).reshape(-1, 3)
        self.motion = np.asarray(self.motion, dtype=np.float64)
        counts = np.array([len(c) for c in self.channels], dtype=np.int64)
        self._channel_start = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
        J = len(self.names)
        if self.parents.shape != (J,) or self.offsets.shape != (J, 3) or len(self.channels) != J:
            raise ValueError(f"BVH {self.source!r}: names, parents (J,), offsets (J, 3) and channels disagree in J")
        if self.motion.ndim != 2 or self.motion.shape[1] != int(counts.sum()):
            raise ValueError(f"BVH {self.source!r}: motion must be (F, {int(counts.sum())}), got {self.motion.shape}")

    @property
    def num_frames(self) -> int:
        return self.motion.shape[0]

    @property
    def fps(self) -> float:
        return 1.0 / self.frame_time

    def index(self, name: str) -> int:
        try:
            return self.names.index(name)
        except ValueError:
            raise KeyError(f"BVH {self.source!r} has no joint named {name!r}") from None

    def channel_values(self, j: int, channel: str) -> np.ndarray | None:
        """(F,) values of one channel of joint ``j``, or None if the joint lacks it."""
        if channel not in self.channels[j]:
            return None
        return self.motion[:, self._channel_start[j] + self.channels[j].index(channel)]

    def local_rotations(self) -> np.ndarray:
        """(F, J, 3, 3) joint rotations relative to the parent frame."""
        F, J = self.num_frames, len(self.names)
        R = np.broadcast_to(np.eye(3), (F, J, 3, 3)).copy()
        for j, chans in enumerate(self.channels):
            rot = [c for c in chans if c in _ROT_CHANNELS]
            if not rot:
                continue
            angles = np.stack([self.channel_values(j, c) for c in rot], axis=-1)
            R[:, j] = euler_to_matrix(angles, "".join(c[0] for c in rot))
        return R

    def local_translations(self) -> np.ndarray:
        """(F, J, 3) joint positions in the parent frame (file units)."""
        F, J = self.num_frames, len(self.names)
        t = np.broadcast_to(self.offsets, (F, J, 3)).copy()
        for j, chans in enumerate(self.channels):
            for axis, c in enumerate(_POS_CHANNELS):
                v = self.channel_values(j, c)
                if v is None:
                    continue
                t[:, j, axis] = v + self.offsets[j, axis] if self.parents[j] < 0 else v
        return t


def euler_to_matrix(angles_deg: np.ndarray, order: str) -> np.ndarray:
    """Euler angles (..., k) in degrees about the axes in ``order`` (e.g. 'ZXY'), composed left to
    right (R = R_order[0] @ R_order[1] @ ...) -> (..., 3, 3). Numpy front of
    :func:`human_body_prior.geometry.rotations.euler_to_matrix`."""
    angles = np.deg2rad(np.asarray(angles_deg, dtype=np.float64))
    order = order.lower()
    if not 1 <= len(order) <= 3 or len(set(order)) != len(order) or set(order) - set("xyz"):
        raise ValueError(f"Euler order must list distinct axes of 'XYZ', got {order!r}")
    # fewer than three channels: the missing axes turn by exactly 0 (an exact identity factor)
    missing = [ax for ax in "xyz" if ax not in order]
    pad = np.zeros(angles.shape[:-1] + (3 - len(order),))
    full = torch.from_numpy(np.concatenate([angles, pad], axis=-1))
    return rotation_tools.euler_to_matrix(full, "r" + order + "".join(missing)).numpy()


def forward_kinematics(local_rot: np.ndarray, local_trans: np.ndarray, parents) -> tuple[np.ndarray, np.ndarray]:
    """Global joint transforms, vectorised over frames (numpy front of the one forward kinematics,
    :func:`human_body_prior.geometry.kinematics.global_transforms`).

    local_rot (F, J, 3, 3), local_trans (F, J, 3), parents (J,) with parents[j] < j ->
    (positions (F, J, 3), orientations (F, J, 3, 3)) in the world frame.
    """
    glob = global_transforms(torch.tensor(np.asarray(local_rot), dtype=torch.float64),  # a copy: views may be read-only
                             torch.tensor(np.asarray(local_trans), dtype=torch.float64),
                             KinematicTree(parents)).numpy()
    return glob[..., 3], glob[..., :3]


def bvh_forward_kinematics(bvh: BVH, end_sites: bool = False):
    """World positions (F, J, 3) and orientations (F, J, 3, 3) of every joint, in file units.

    With ``end_sites=True`` also returns the end-site positions (F, E, 3).
    """
    pos, rot = forward_kinematics(bvh.local_rotations(), bvh.local_translations(), bvh.parents)
    if not end_sites:
        return pos, rot
    if not bvh.end_sites:
        return pos, rot, np.zeros((bvh.num_frames, 0, 3))
    par = np.array([p for p, _ in bvh.end_sites])
    off = np.stack([o for _, o in bvh.end_sites])
    ends = pos[:, par] + np.einsum("feab,eb->fea", rot[:, par], off)
    return pos, rot, ends


def rest_pose(bvh: BVH) -> tuple[np.ndarray, np.ndarray]:
    """World positions (J, 3) and orientations (J, 3, 3) with every rotation channel at zero and
    every joint at its OFFSET (the hierarchy's own rest pose)."""
    J = len(bvh.names)
    pos, rot = forward_kinematics(np.broadcast_to(np.eye(3), (1, J, 3, 3)), bvh.offsets[None], bvh.parents)
    return pos[0], rot[0]


# ----------------------------------------------------------------------------------------------- reading

def _open_text(path: str, max_bytes: int = None) -> str:
    """The text of a .bvh or .bvh.gz file, refusing more than ``max_bytes`` (default MAX_BVH_BYTES)
    of decompressed text without inflating more than that."""
    limit = MAX_BVH_BYTES if max_bytes is None else int(max_bytes)
    with open(path, "rb") as fh:
        gzipped = fh.read(2) == b"\x1f\x8b"
        fh.seek(0)
        if gzipped:
            try:
                with gzip.GzipFile(fileobj=fh) as gz:
                    raw = gz.read(limit + 1)
            except (OSError, EOFError, zlib.error) as e:
                raise BVHError(f"{path}: corrupt gzip data ({e})") from None
        else:
            raw = fh.read(limit + 1)
    if len(raw) > limit:
        raise BVHError(f"{path}: more than {limit / 2 ** 20:g} MiB of BVH text{' once decompressed' if gzipped else ''}; "
                       f"refused (read_bvh(..., max_bytes=N) raises the limit)")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def read_bvh(path: str, frame_time: float = None, max_bytes: int = None) -> BVH:
    """Read a ``.bvh`` or ``.bvh.gz`` file. Raises BVHError naming the file and line on bad input.

    ``frame_time`` (seconds) replaces the header's value, which is then not checked; ``max_bytes``
    caps the (decompressed) text, default ``MAX_BVH_BYTES``.
    """
    path = os.fspath(path)
    return parse_bvh(_open_text(path, max_bytes), source=path, frame_time=frame_time)


def parse_bvh(text: str, source: str = "<string>", frame_time: float = None) -> BVH:
    """Parse BVH text; ``source`` names the file in error messages. ``frame_time`` (seconds) replaces
    the header's value."""
    lines = text.splitlines()
    tokens = []  # (token, line number) for the hierarchy
    motion_line = None
    for ln, line in enumerate(lines, start=1):
        stripped = line.strip()
        if stripped.upper().startswith("MOTION"):
            motion_line = ln
            break
        for tok in stripped.replace("{", " { ").replace("}", " } ").split():
            tokens.append((tok, ln))
    last_line = len(lines)

    def fail(msg, ln):
        raise BVHError(f"{source}, line {ln}: {msg}")

    pos = 0

    def take(what):
        nonlocal pos
        if pos >= len(tokens):
            fail(f"file ends inside the HIERARCHY, expected {what}", motion_line or last_line)
        tok, ln = tokens[pos]
        pos += 1
        return tok, ln

    def take_float(what):
        tok, ln = take(what)
        try:
            value = float(tok)
        except ValueError:
            fail(f"expected a number for {what}, got {tok!r}", ln)
        if not np.isfinite(value):
            fail(f"{what} is not finite: {tok!r}", ln)
        if abs(value) > MAX_BVH_VALUE:
            fail(f"{what} is {tok} (more than {MAX_BVH_VALUE:g} in magnitude; a broken file?)", ln)
        return value

    def expect(word):
        tok, ln = take(repr(word))
        if tok.upper() != word.upper():
            fail(f"expected {word!r}, got {tok!r}", ln)
        return ln

    names, parents, offsets, channels, end_sites = [], [], [], [], []
    index = {}

    def joint_header(parent: int) -> int:
        """Name, '{', OFFSET and CHANNELS of a joint; returns its index."""
        tok, ln = take("a joint name")
        if tok == "{":
            fail("joint without a name", ln)
        name = tok
        if name in index:
            fail(f"duplicate joint name {name!r}", ln)
        expect("{")
        j = len(names)
        names.append(name)
        index[name] = j
        parents.append(parent)
        expect("OFFSET")
        offsets.append([take_float(f"the OFFSET of {name}") for _ in range(3)])
        kw, ln = take("CHANNELS")
        if kw.upper() != "CHANNELS":
            fail(f"expected CHANNELS for joint {name!r}, got {kw!r}", ln)
        n_tok, ln = take("the channel count")
        try:
            n = int(n_tok)
        except ValueError:
            fail(f"channel count of {name!r} is not an integer: {n_tok!r}", ln)
        if n < 0 or n > 6:
            fail(f"joint {name!r} has {n} channels; 0 to 6 are supported", ln)
        chans = []
        for _ in range(n):
            c, ln = take("a channel name")
            if c not in _VALID_CHANNELS:
                fail(f"unknown channel {c!r} of joint {name!r} (expected one of {', '.join(_VALID_CHANNELS)})", ln)
            if c in chans:
                fail(f"channel {c!r} repeated for joint {name!r}", ln)
            chans.append(c)
        channels.append(tuple(chans))
        return j

    def parse_hierarchy():
        """The joints below ROOT, with an explicit stack of open joints (no recursion)."""
        open_joints = [joint_header(-1)]
        while open_joints:
            j = open_joints[-1]
            tok, ln = take("JOINT, End Site or '}'")
            up = tok.upper()
            if up == "}":
                open_joints.pop()
            elif up == "JOINT":
                open_joints.append(joint_header(j))
            elif up == "END":
                site, ln2 = take("Site")
                if site.upper() != "SITE":
                    fail(f"expected 'End Site', got 'End {site}'", ln2)
                expect("{")
                expect("OFFSET")
                off = np.array([take_float(f"the End Site OFFSET under {names[j]}") for _ in range(3)])
                expect("}")
                end_sites.append((j, off))
            else:
                fail(f"unexpected {tok!r} in joint {names[j]!r} (expected JOINT, End Site or '}}')", ln)

    if motion_line is None and not tokens:
        raise BVHError(f"{source}, line 1: empty file, expected HIERARCHY")
    tok, ln = take("HIERARCHY")
    if tok.upper() != "HIERARCHY":
        fail(f"expected HIERARCHY, got {tok!r}", ln)
    tok, ln = take("ROOT")
    if tok.upper() != "ROOT":
        fail(f"expected ROOT, got {tok!r}", ln)
    parse_hierarchy()
    if pos != len(tokens):
        tok, ln = tokens[pos]
        fail(f"unexpected {tok!r} after the root joint (one ROOT per file is supported)", ln)
    if motion_line is None:
        raise BVHError(f"{source}, line {last_line}: file ends before the MOTION section (truncated?)")

    # MOTION header: "Frames: N" and "Frame Time: dt"
    ln = motion_line
    header = {}
    i = motion_line  # index of the line after MOTION (0-based == motion_line)
    while len(header) < 2:
        if i >= len(lines):
            raise BVHError(f"{source}, line {i}: file ends inside the MOTION header (expected 'Frames:' and 'Frame Time:')")
        s = lines[i].strip()
        i += 1
        if not s:
            continue
        key, sep, val = s.partition(":")
        key = " ".join(key.split()).lower()
        if not sep or key not in ("frames", "frame time"):
            fail(f"expected 'Frames: N' and 'Frame Time: T', got {s[:60]!r}", i)
        try:
            header[key] = int(val) if key == "frames" else float(val)
        except ValueError:
            fail(f"bad value in {s[:60]!r}", i)
    n_frames = header["frames"]
    if n_frames < 0:
        fail(f"need Frames >= 0, got {n_frames}", i)
    if frame_time is None:
        frame_time = header["frame time"]
        if not 1 / MAX_FPS <= frame_time <= 1 / MIN_FPS:  # also refuses nan, inf and denormals
            fail(f"Frame Time {frame_time!r} s is not a frame rate between {MIN_FPS:g} and {MAX_FPS:g} fps "
                 "(give the true rate: read_bvh(..., frame_time=...), bvh2amass --fps)", i)
    else:
        frame_time = 1.0 / check_fps(1.0 / float(frame_time), f"{source}: frame_time")

    n_ch = sum(len(c) for c in channels)
    body = lines[i:]
    # drop trailing blank lines only
    while body and not body[-1].strip():
        body.pop()
    first_data_line = i + 1
    if len(body) < n_frames:
        raise BVHError(f"{source}, line {first_data_line + len(body) - 1 if body else i}: truncated file, header says "
                       f"{n_frames} frames but only {len(body)} frame lines follow")
    if len(body) > n_frames:
        extra = body[n_frames:]
        if any(s.strip() for s in extra):
            fail(f"{len(body) - n_frames} more frame lines than the header's Frames: {n_frames}", first_data_line + n_frames)
    body = body[:n_frames]
    joined = " ".join(body)
    try:
        values = np.array(joined.split(), dtype=np.float64)
        ok = values.size == n_frames * n_ch
    except ValueError:
        ok = False
    if not ok:
        for k, s in enumerate(body):
            parts = s.split()
            if len(parts) != n_ch:
                fail(f"frame {k} has {len(parts)} values, the hierarchy has {n_ch} channels", first_data_line + k)
            try:
                [float(p) for p in parts]
            except ValueError:
                fail(f"frame {k} has a value that is not a number", first_data_line + k)
    motion = values.reshape(n_frames, n_ch)
    if not np.isfinite(motion).all():
        k = int(np.argwhere(~np.isfinite(motion))[0, 0])
        fail(f"frame {k} has a non-finite value", first_data_line + k)
    if np.abs(motion).max(initial=0.0) > MAX_BVH_VALUE:
        k, c = (int(i) for i in np.argwhere(np.abs(motion) > MAX_BVH_VALUE)[0])
        fail(f"frame {k} has {motion[k, c]:g} in channel {c} (more than {MAX_BVH_VALUE:g} in magnitude)",
             first_data_line + k)
    return BVH(names=names, parents=np.array(parents), offsets=np.array(offsets, dtype=np.float64),
               channels=channels, end_sites=end_sites, motion=motion, frame_time=frame_time, source=source)


# ----------------------------------------------------------------------------------------------- writing

def _fmt(x: float) -> str:
    # repr gives the shortest string that reads back to the same float64
    r = repr(float(x))
    return "0" if r in ("0.0", "-0.0") else (r[:-2] if r.endswith(".0") else r)


def format_bvh(bvh: BVH) -> str:
    """BVH text of ``bvh``; numbers are written so that they read back exactly (float64).

    Joints are written depth first (the only order BVH can express), with their motion columns.
    """
    children = [[] for _ in bvh.names]
    for j, p in enumerate(bvh.parents):
        if p >= 0:
            children[p].append(j)
    ends = [[] for _ in bvh.names]
    for p, off in bvh.end_sites:
        ends[p].append(off)
    out = ["HIERARCHY"]
    order = []  # joints in the order they are written (depth first); motion columns follow it

    def close(j, depth):
        ind = "  " * min(depth, 32)  # indentation stops growing in very deep trees
        for off in ends[j]:
            out.append(f"{ind}  End Site")
            out.append(f"{ind}  {{")
            out.append(f"{ind}    OFFSET " + " ".join(_fmt(v) for v in off))
            out.append(f"{ind}  }}")
        out.append(f"{ind}}}")

    roots = [j for j, p in enumerate(bvh.parents) if p < 0]
    if len(roots) != 1:
        raise ValueError(f"BVH {bvh.source!r}: exactly one root joint is needed, found {len(roots)}")
    stack = [(roots[0], 0, False)]  # (joint, depth, children done); depth first without recursion
    while stack:
        j, depth, done = stack.pop()
        if done:
            close(j, depth)
            continue
        order.append(j)
        ind = "  " * min(depth, 32)  # indentation stops growing in very deep trees
        kw = "ROOT" if bvh.parents[j] < 0 else "JOINT"
        out.append(f"{ind}{kw} {bvh.names[j]}")
        out.append(f"{ind}{{")
        out.append(f"{ind}  OFFSET " + " ".join(_fmt(v) for v in bvh.offsets[j]))
        out.append(f"{ind}  CHANNELS {len(bvh.channels[j])}" + "".join(" " + c for c in bvh.channels[j]))
        stack.append((j, depth, True))
        stack.extend((c, depth + 1, False) for c in reversed(children[j]))
    out.append("MOTION")
    out.append(f"Frames: {bvh.num_frames}")
    out.append(f"Frame Time: {_fmt(bvh.frame_time)}")
    cols = np.concatenate([bvh._channel_start[j] + np.arange(len(bvh.channels[j])) for j in order]).astype(np.int64)
    out.extend(" ".join(_fmt(v) for v in row) for row in bvh.motion[:, cols])
    return "\n".join(out) + "\n"


def write_bvh(path: str, bvh: BVH) -> None:
    """Write ``bvh`` atomically (gzip-compressed when ``path`` ends in .gz)."""
    path = os.fspath(path)
    data = format_bvh(bvh).encode("utf-8")
    if path.endswith(".gz"):
        data = gzip.compress(data, mtime=0)
    atomic_write_bytes(path, data)
