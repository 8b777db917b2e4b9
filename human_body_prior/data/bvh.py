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
            R[:, j] = channel_rotations(angles, "".join(c[0] for c in rot))
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


def channel_rotations(angles_deg: np.ndarray, order: str) -> np.ndarray:
    """Rotation channels (..., k) in degrees about the axes in ``order`` (e.g. 'ZXY', 1 to 3 axes),
    composed left to right as BVH lists them (R = R_order[0] @ R_order[1] @ ...) -> (..., 3, 3).
    Numpy front of the core's :func:`human_body_prior.geometry.rotations.euler_to_matrix`."""
    angles = np.deg2rad(np.asarray(angles_deg, dtype=np.float64))
    order = order.lower()
    if not 1 <= len(order) <= 3 or len(set(order)) != len(order) or set(order) - set("xyz"):
        raise ValueError(f"Euler order must list distinct axes of 'XYZ', got {order!r}")
    # fewer than three channels: the missing axes turn by exactly 0 (an exact identity factor)
    missing = [ax for ax in "xyz" if ax not in order]
    pad = np.zeros(angles.shape[:-1] + (3 - len(order),))
    full = torch.from_numpy(np.concatenate([angles, pad], axis=-1))
    return rotation_tools.euler_to_matrix(full, "r" + order + "".join(missing)).numpy()


def joint_world_frames(local_rot: np.ndarray, local_trans: np.ndarray, parents) -> tuple[np.ndarray, np.ndarray]:
    """World positions and orientations of joints, vectorised over frames (numpy front of the one forward kinematics,
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
    pos, rot = joint_world_frames(bvh.local_rotations(), bvh.local_translations(), bvh.parents)
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
    pos, rot = joint_world_frames(np.broadcast_to(np.eye(3), (1, J, 3, 3)), bvh.offsets[None], bvh.parents)
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
    lines, tokens, motion_line = tokenize_bvh(text)
    if motion_line is None and not tokens:
        _fail(source, "empty file, expected HIERARCHY", 1)
    stream = _TokenStream(tokens, source, motion_line or len(lines))
    hierarchy = _HierarchyParser(stream).parse()
    if motion_line is None:
        _fail(source, "file ends before the MOTION section (truncated?)", len(lines))
    n_frames, header_time, first = _motion_header(lines, motion_line, source)
    frame_time = _frame_time(header_time, frame_time, source, first)
    n_ch = sum(len(c) for c in hierarchy.channels)
    motion = _motion_values(_frame_lines(lines, first, n_frames, source), n_ch, first + 1, source)
    return BVH(names=hierarchy.names, parents=np.array(hierarchy.parents),
               offsets=np.array(hierarchy.offsets, dtype=np.float64), channels=hierarchy.channels,
               end_sites=hierarchy.end_sites, motion=motion, frame_time=frame_time, source=source)


def _fail(source: str, msg: str, line: int):
    """Raise the BVHError of ``msg`` at 1-based ``line`` of ``source``."""
    raise BVHError(f"{source}, line {line}: {msg}")


def tokenize_bvh(text: str) -> tuple[list[str], list[tuple[str, int]], int | None]:
    """Split BVH text: (its lines, the HIERARCHY's tokens as (token, 1-based line), the line number of
    the MOTION keyword or None). Braces are tokens of their own, also when written against a word."""
    lines = text.splitlines()
    tokens = []
    for ln, line in enumerate(lines, start=1):
        stripped = line.strip()
        if stripped.upper().startswith("MOTION"):
            return lines, tokens, ln
        tokens.extend((tok, ln) for tok in stripped.replace("{", " { ").replace("}", " } ").split())
    return lines, tokens, None


class _TokenStream:
    """A cursor over the HIERARCHY's (token, line) pairs; errors name ``source`` and the line, and
    running out reports ``end_line`` (the MOTION line, else the file's last)."""

    def __init__(self, tokens: list[tuple[str, int]], source: str, end_line: int):
        self.tokens, self.source, self.end_line, self.pos = tokens, source, end_line, 0

    def fail(self, msg: str, line: int):
        _fail(self.source, msg, line)

    def take(self, what: str) -> tuple[str, int]:
        """The next (token, line); ``what`` describes the expected token for the end-of-file error."""
        if self.pos >= len(self.tokens):
            self.fail(f"file ends inside the HIERARCHY, expected {what}", self.end_line)
        self.pos += 1
        return self.tokens[self.pos - 1]

    def take_float(self, what: str) -> float:
        """The next token as a finite number of magnitude <= MAX_BVH_VALUE."""
        tok, ln = self.take(what)
        try:
            value = float(tok)
        except ValueError:
            self.fail(f"expected a number for {what}, got {tok!r}", ln)
        if not np.isfinite(value):
            self.fail(f"{what} is not finite: {tok!r}", ln)
        if abs(value) > MAX_BVH_VALUE:
            self.fail(f"{what} is {tok} (more than {MAX_BVH_VALUE:g} in magnitude; a broken file?)", ln)
        return value

    def expect(self, word: str) -> int:
        """Consume the keyword ``word`` (any case); returns its line."""
        tok, ln = self.take(repr(word))
        if tok.upper() != word.upper():
            self.fail(f"expected {word!r}, got {tok!r}", ln)
        return ln

    def keyword(self, word: str) -> None:
        """Consume ``word`` (any case), else 'expected WORD, got ...' (HIERARCHY, ROOT)."""
        tok, ln = self.take(word)
        if tok.upper() != word:
            self.fail(f"expected {word}, got {tok!r}", ln)


class _HierarchyParser:
    """The HIERARCHY of one ROOT into joint tables (names, parents, offsets (J, 3), channels,
    end_sites), with an explicit stack of open joints: any depth, no recursion."""

    def __init__(self, stream: _TokenStream):
        self.stream = stream
        self.names, self.parents, self.offsets, self.channels, self.end_sites = [], [], [], [], []
        self.index = {}

    def parse(self) -> "_HierarchyParser":
        """'HIERARCHY ROOT ...' up to the root's closing brace; nothing may follow before MOTION."""
        s = self.stream
        s.keyword("HIERARCHY")
        s.keyword("ROOT")
        open_joints = [self._joint(-1)]
        while open_joints:
            j = open_joints[-1]
            tok, ln = s.take("JOINT, End Site or '}'")
            up = tok.upper()
            if up == "}":
                open_joints.pop()
            elif up == "JOINT":
                open_joints.append(self._joint(j))
            elif up == "END":
                self._end_site(j)
            else:
                s.fail(f"unexpected {tok!r} in joint {self.names[j]!r} (expected JOINT, End Site or '}}')", ln)
        if s.pos != len(s.tokens):
            tok, ln = s.tokens[s.pos]
            s.fail(f"unexpected {tok!r} after the root joint (one ROOT per file is supported)", ln)
        return self

    def _joint(self, parent: int) -> int:
        """Name, '{', OFFSET and CHANNELS of a joint below ``parent`` (-1: the root); returns its index."""
        s = self.stream
        name, ln = s.take("a joint name")
        if name == "{":
            s.fail("joint without a name", ln)
        if name in self.index:
            s.fail(f"duplicate joint name {name!r}", ln)
        s.expect("{")
        j = self.index[name] = len(self.names)
        self.names.append(name)
        self.parents.append(parent)
        s.expect("OFFSET")
        self.offsets.append([s.take_float(f"the OFFSET of {name}") for _ in range(3)])
        self.channels.append(self._channels(name))
        return j

    def _channels(self, name: str) -> tuple[str, ...]:
        """'CHANNELS n c1 .. cn' of joint ``name``: 0 to 6 distinct names of _VALID_CHANNELS."""
        s = self.stream
        kw, ln = s.take("CHANNELS")
        if kw.upper() != "CHANNELS":
            s.fail(f"expected CHANNELS for joint {name!r}, got {kw!r}", ln)
        n_tok, ln = s.take("the channel count")
        try:
            n = int(n_tok)
        except ValueError:
            s.fail(f"channel count of {name!r} is not an integer: {n_tok!r}", ln)
        if n < 0 or n > 6:
            s.fail(f"joint {name!r} has {n} channels; 0 to 6 are supported", ln)
        chans = []
        for _ in range(n):
            c, ln = s.take("a channel name")
            if c not in _VALID_CHANNELS:
                s.fail(f"unknown channel {c!r} of joint {name!r} (expected one of {', '.join(_VALID_CHANNELS)})", ln)
            if c in chans:
                s.fail(f"channel {c!r} repeated for joint {name!r}", ln)
            chans.append(c)
        return tuple(chans)

    def _end_site(self, j: int) -> None:
        """'Site { OFFSET x y z }' after 'End', a leaf under joint ``j``."""
        s = self.stream
        site, ln = s.take("Site")
        if site.upper() != "SITE":
            s.fail(f"expected 'End Site', got 'End {site}'", ln)
        s.expect("{")
        s.expect("OFFSET")
        off = np.array([s.take_float(f"the End Site OFFSET under {self.names[j]}") for _ in range(3)])
        s.expect("}")
        self.end_sites.append((j, off))


def _motion_header(lines: list[str], motion_line: int, source: str) -> tuple[int, float, int]:
    """'Frames: N' and 'Frame Time: dt' after the MOTION line (1-based ``motion_line``), in either order,
    blank lines skipped -> (N, dt in seconds, 1-based line of the header's last line)."""
    header, i = {}, motion_line  # i: 0-based index of the next line == 1-based number of the last read
    while len(header) < 2:
        if i >= len(lines):
            _fail(source, "file ends inside the MOTION header (expected 'Frames:' and 'Frame Time:')", i)
        s = lines[i].strip()
        i += 1
        if not s:
            continue
        key, sep, val = s.partition(":")
        key = " ".join(key.split()).lower()
        if not sep or key not in ("frames", "frame time"):
            _fail(source, f"expected 'Frames: N' and 'Frame Time: T', got {s[:60]!r}", i)
        try:
            header[key] = int(val) if key == "frames" else float(val)
        except ValueError:
            _fail(source, f"bad value in {s[:60]!r}", i)
    if header["frames"] < 0:
        _fail(source, f"need Frames >= 0, got {header['frames']}", i)
    return header["frames"], header["frame time"], i


def _frame_time(header_time: float, frame_time, source: str, line: int) -> float:
    """Seconds per frame: the caller's ``frame_time`` if given (ValueError unless a plausible rate),
    else the header's, which must give MIN_FPS..MAX_FPS (BVHError at ``line``)."""
    if frame_time is not None:
        return 1.0 / check_fps(1.0 / float(frame_time), f"{source}: frame_time")
    if not 1 / MAX_FPS <= header_time <= 1 / MIN_FPS:  # also refuses nan, inf and denormals
        _fail(source, f"Frame Time {header_time!r} s is not a frame rate between {MIN_FPS:g} and {MAX_FPS:g} fps "
              "(give the true rate: read_bvh(..., frame_time=...), bvh2amass --fps)", line)
    return header_time


def _frame_lines(lines: list[str], first: int, n_frames: int, source: str) -> list[str]:
    """The ``n_frames`` frame lines from 0-based index ``first``; trailing blank lines are allowed,
    fewer lines or more non-blank ones are not."""
    body = lines[first:]
    while body and not body[-1].strip():  # drop trailing blank lines only
        body.pop()
    first_data_line = first + 1
    if len(body) < n_frames:
        _fail(source, f"truncated file, header says {n_frames} frames but only {len(body)} frame lines follow",
              first_data_line + len(body) - 1 if body else first)
    if len(body) > n_frames and any(s.strip() for s in body[n_frames:]):
        _fail(source, f"{len(body) - n_frames} more frame lines than the header's Frames: {n_frames}",
              first_data_line + n_frames)
    return body[:n_frames]


def _motion_values(body: list[str], n_ch: int, first_data_line: int, source: str) -> np.ndarray:
    """(F, n_ch) float64 channel values of the frame lines ``body`` (the first at 1-based
    ``first_data_line``): n_ch numbers a line, finite, at most MAX_BVH_VALUE in magnitude."""
    n_frames = len(body)
    try:
        values = np.array(" ".join(body).split(), dtype=np.float64)
        ok = values.size == n_frames * n_ch
    except ValueError:
        ok = False
    if not ok:  # find the first bad line for the message
        for k, s in enumerate(body):
            parts = s.split()
            if len(parts) != n_ch:
                _fail(source, f"frame {k} has {len(parts)} values, the hierarchy has {n_ch} channels",
                      first_data_line + k)
            try:
                [float(p) for p in parts]
            except ValueError:
                _fail(source, f"frame {k} has a value that is not a number", first_data_line + k)
    motion = values.reshape(n_frames, n_ch)
    if not np.isfinite(motion).all():
        k = int(np.argwhere(~np.isfinite(motion))[0, 0])
        _fail(source, f"frame {k} has a non-finite value", first_data_line + k)
    if np.abs(motion).max(initial=0.0) > MAX_BVH_VALUE:
        k, c = (int(i) for i in np.argwhere(np.abs(motion) > MAX_BVH_VALUE)[0])
        _fail(source, f"frame {k} has {motion[k, c]:g} in channel {c} (more than {MAX_BVH_VALUE:g} in magnitude)",
              first_data_line + k)
    return motion


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
