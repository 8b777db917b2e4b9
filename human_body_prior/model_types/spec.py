"""One ModelSpec per model type of the SMPL family (SMPL, SMPL-H, SMPL-X, MANO): everything the package
knows about a type is here, and everything else (pose vector layout, parameter widths, file names, the
type of a model file) is derived from it.

Joint names and parents follow the official model files: ``parents[j]`` is the parent of joint j (-1
for the root). SMPL, SMPL-H and SMPL-X share their first 22 joints (the body: pelvis, then the 21
joints of ``pose_body``); fingers come in the order index, middle, pinky, ring, thumb.
"""

from dataclasses import dataclass

BODY_JOINT_NAMES = (
    "pelvis", "left_hip", "right_hip", "spine1", "left_knee", "right_knee", "spine2",
    "left_ankle", "right_ankle", "spine3", "left_foot", "right_foot", "neck", "left_collar",
    "right_collar", "head", "left_shoulder", "right_shoulder", "left_elbow", "right_elbow",
    "left_wrist", "right_wrist",
)
BODY_PARENTS = (-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19)
NUM_POSE_BODY_JOINTS = len(BODY_JOINT_NAMES) - 1  # the joints of pose_body (and of VPoser): body less root

FINGERS = ("index", "middle", "pinky", "ring", "thumb")
# The near-rigid part of the body (pelvis, hips, spine, neck, collars, shoulders): what a body is placed by.
TORSO_JOINT_NAMES = ("pelvis", "left_hip", "right_hip", "spine1", "spine2", "spine3", "neck", "left_collar",
                     "right_collar", "left_shoulder", "right_shoulder")
# The midline chain from the pelvis to the head: the joints whose bones run along the trunk.
TRUNK_JOINT_NAMES = ("pelvis", "spine1", "spine2", "spine3", "neck", "head")
_FACE_JOINT_NAMES = ("jaw", "left_eye_smplhf", "right_eye_smplhf")
_BODY_GENDERS = ("neutral", "female", "male")


def _finger_names(prefix: str) -> tuple:
    """The 15 finger joints of one hand, e.g. 'left_index1' .. 'left_thumb3' ('' prefix: MANO's)."""
    return tuple(f"{prefix}{finger}{k}" for finger in FINGERS for k in (1, 2, 3))


def _finger_parents(wrist: int, first: int) -> tuple:
    """Parents of 15 finger joints numbered from ``first`` whose wrist joint is ``wrist``."""
    out = ()
    for base in range(first, first + 15, 3):
        out += (wrist, base, base + 1)
    return out


@dataclass(frozen=True)
class ModelSpec:
    """A model type: its joints, pose parameters, shape spaces and file names.

    joint_names, parents: (J,) in the official order. pose_parts: (name, width) of each axis-angle pose
    part, in the order they form full_pose (3 J values). hand_joints: the joints ``pose_hand`` rotates.
    torso_joints: the near-rigid torso (to place a body by); trunk_joints: the midline chain from the
    pelvis to the head (and the face joints). expression_starts: shapedirs columns where expressions may
    start, largest first (the first one below the file's column count is used). genders: the file
    variants, ``genders[0]`` the default; file_prefix: the official file names' prefix (SMPLX_NEUTRAL.npz).
    """

    name: str
    title: str
    joint_names: tuple
    parents: tuple
    pose_parts: tuple
    hand_joints: tuple
    torso_joints: tuple = ()
    trunk_joints: tuple = ()
    has_dmpls: bool = False
    expression_starts: tuple = ()
    num_vertices: int = 0
    genders: tuple = _BODY_GENDERS
    file_prefix: str = ""

    @property
    def num_joints(self) -> int:
        return len(self.parents)

    @property
    def has_expression(self) -> bool:
        return bool(self.expression_starts)

    @property
    def has_body(self) -> bool:
        """Whether the type has the 22 body joints (and ``pose_body``): all but MANO."""
        return "pose_body" in dict(self.pose_parts)

    @property
    def pose_width(self) -> int:
        """Width of full_pose, 3 J."""
        return sum(width for _, width in self.pose_parts)

    @property
    def posedirs_width(self) -> int:
        """Columns of posedirs: 9 values per non-root joint."""
        return 9 * (self.num_joints - 1)

    def pose_slices(self) -> dict:
        """{pose part: slice of full_pose}, e.g. smplx's 'pose_body' is slice(3, 66)."""
        out, start = {}, 0
        for part, width in self.pose_parts:
            out[part] = slice(start, start + width)
            start += width
        return out

    def joint_indices(self, names) -> tuple:
        """Indices of the named joints, in the order given; a ValueError names any unknown one."""
        unknown = [n for n in names if n not in self.joint_names]
        if unknown:
            raise ValueError(f"a {self.name} model has no joint(s) {unknown}")
        return tuple(self.joint_names.index(n) for n in names)

    @property
    def torso_indices(self) -> tuple:
        return self.joint_indices(self.torso_joints)

    def expression_start(self, num_shape_columns: int) -> int:
        """The shapedirs column where expressions start in a file with that many shape columns."""
        if not self.expression_starts:
            raise ValueError(f"a {self.title} model has no expressions")
        return next((s for s in self.expression_starts if num_shape_columns > s), self.expression_starts[-1])

    def parameter_widths(self, num_betas: int, num_expressions: int = 0, num_dmpls: int = 0) -> dict:
        """{parameter: width} of a body model: trans, the pose parts, betas, then expression and dmpls
        when their count is non-zero."""
        widths = {"trans": 3, **dict(self.pose_parts), "betas": num_betas}
        if num_expressions:
            widths["expression"] = num_expressions
        if num_dmpls:
            widths["dmpls"] = num_dmpls
        return widths


def _body_spec(name, title, extra_names, extra_parents, pose_parts, hand_joints, **kw) -> ModelSpec:
    return ModelSpec(name=name, title=title, joint_names=BODY_JOINT_NAMES + extra_names,
                     parents=BODY_PARENTS + extra_parents, pose_parts=pose_parts, hand_joints=hand_joints,
                     torso_joints=TORSO_JOINT_NAMES, file_prefix=name.upper(), **kw)


_ROOT_AND_BODY = (("root_orient", 3), ("pose_body", 3 * NUM_POSE_BODY_JOINTS))
_HANDS = _finger_names("left_") + _finger_names("right_")

SMPL = _body_spec("smpl", "SMPL", ("left_hand", "right_hand"), (20, 21), _ROOT_AND_BODY + (("pose_hand", 6),),
                  ("left_hand", "right_hand"), trunk_joints=TRUNK_JOINT_NAMES, has_dmpls=True, num_vertices=6890)
SMPLH = _body_spec("smplh", "SMPL-H", _HANDS, _finger_parents(20, 22) + _finger_parents(21, 37),
                   _ROOT_AND_BODY + (("pose_hand", 90),), _HANDS, trunk_joints=TRUNK_JOINT_NAMES, has_dmpls=True,
                   num_vertices=6890)
SMPLX = _body_spec("smplx", "SMPL-X", _FACE_JOINT_NAMES + _HANDS,
                   (15, 15, 15) + _finger_parents(20, 25) + _finger_parents(21, 40),
                   _ROOT_AND_BODY + (("pose_jaw", 3), ("pose_eye", 6), ("pose_hand", 90)), _HANDS,
                   trunk_joints=TRUNK_JOINT_NAMES + _FACE_JOINT_NAMES, expression_starts=(300, 10),
                   num_vertices=10475)
MANO = ModelSpec(name="mano", title="MANO", joint_names=("wrist",) + _finger_names(""),
                 parents=(-1,) + _finger_parents(0, 1), pose_parts=(("root_orient", 3), ("pose_hand", 45)),
                 hand_joints=_finger_names(""), num_vertices=778, genders=("right", "left"), file_prefix="MANO")

SPECS = {spec.name: spec for spec in (SMPL, SMPLH, SMPLX, MANO)}
MODEL_TYPES = tuple(SPECS)
_BY_JOINT_COUNT = {spec.num_joints: spec for spec in SPECS.values()}


def model_spec(model_type: str) -> ModelSpec:
    """The spec of 'smpl' | 'smplh' | 'smplx' | 'mano' (any case); a ValueError for anything else."""
    spec = SPECS.get(str(model_type).lower())
    if spec is None:
        raise ValueError(f"model_type must be one of {MODEL_TYPES}, got {model_type!r}")
    return spec


def spec_for_joint_count(num_joints: int):
    """The spec of the type with that many joints (24, 52, 55 or 16), or None: the joint count is what
    tells the types apart (pose vectors hold 3 values per joint, posedirs 9 per non-root joint)."""
    return _BY_JOINT_COUNT.get(int(num_joints))


def identify_model_type(arrays, fname: str = "model file") -> str:
    """The type of a model file from its arrays: the joint count of kintree_table (2, J), checked against
    the width of posedirs (V, 3, 9 (J - 1)) when there is one. A one-line ValueError naming ``fname``
    for any other layout."""
    import numpy as np  # here: importing the tables (and the package root) needs no numpy

    num_joints = np.asarray(arrays["kintree_table"]).shape[-1]
    spec = spec_for_joint_count(num_joints)
    if spec is None:
        known = ", ".join(f"{s.title} {s.num_joints}" for s in SPECS.values())
        raise ValueError(f"{fname}: kintree_table has {num_joints} joints, which is no known model type "
                         f"(joints per type: {known})")
    if "posedirs" in arrays:
        width = np.asarray(arrays["posedirs"]).shape[-1]
        if width != spec.posedirs_width:
            raise ValueError(f"{fname}: posedirs has {width} columns but kintree_table has {num_joints} "
                             f"joints, which needs {spec.posedirs_width}")
    return spec.name
