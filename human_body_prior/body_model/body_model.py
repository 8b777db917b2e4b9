"""BodyModel: SMPL, SMPL-H, SMPL-X and MANO from their official model files.

Poses are axis-angle in radians, lengths in metres. B is the batch size, V the vertex count and
J the joint count of the model's kinematic tree (SMPL 24, SMPL-H 52, SMPL-X 55, MANO 16).
"""

import math
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from human_body_prior.body_model.lbs import KinematicTree, SparseSkinningWeights, lbs
from human_body_prior.body_model.model_io import load_model_file

_TYPE_BY_JOINTS = {24: "smpl", 52: "smplh", 55: "smplx", 16: "mano"}
MODEL_TYPES = tuple(_TYPE_BY_JOINTS.values())

# Widths of the pose parts per model type; full_pose is their concatenation in this order.
POSE_PARTS = {
    "smpl": (("root_orient", 3), ("pose_body", 63), ("pose_hand", 6)),
    "smplh": (("root_orient", 3), ("pose_body", 63), ("pose_hand", 90)),
    "smplx": (("root_orient", 3), ("pose_body", 63), ("pose_jaw", 3), ("pose_eye", 6), ("pose_hand", 90)),
    "mano": (("root_orient", 3), ("pose_hand", 45)),
}
# Shape columns where SMPL-X expressions start: 300 in files with more than 300 columns, else 10.
SMPLX_SHAPE_SPACE = 300
SMPLX_SMALL_SHAPE_SPACE = 10


class BodyModelOutput(dict):
    """Result of BodyModel.forward; a dict whose entries are also attributes (out.v, out.Jtr, ...)."""

    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(f"BodyModel output has no {name!r}; it has {sorted(self)}") from None


def _parents_from_kintree(kintree, fname) -> list:
    kintree = np.asarray(kintree)
    if kintree.ndim != 2 or kintree.shape[0] != 2:
        raise ValueError(f"{fname}: kintree_table must have shape (2, J), got {kintree.shape}")
    parents = kintree[0].astype(np.int64)
    parents[0] = -1  # official files store the root's parent as 2**32 - 1
    return parents.tolist()


def detect_model_type(data: dict, fname: str = "model file") -> str:
    """Model type from the joint count of kintree_table, cross-checked with the width of posedirs."""
    num_joints = np.asarray(data["kintree_table"]).shape[-1]
    if num_joints not in _TYPE_BY_JOINTS:
        raise ValueError(f"{fname}: kintree_table has {num_joints} joints; expected one of "
                         f"{sorted(_TYPE_BY_JOINTS)} (SMPL, SMPL-H, SMPL-X, MANO)")
    model_type = _TYPE_BY_JOINTS[num_joints]
    if "posedirs" in data:
        width = np.asarray(data["posedirs"]).shape[-1]
        if width != 9 * (num_joints - 1):
            raise ValueError(f"{fname}: posedirs has {width} columns but kintree_table has {num_joints} "
                             f"joints, which needs {9 * (num_joints - 1)}")
    return model_type


def _as_batch(name, value, width, dtype, device) -> torch.Tensor:
    """value (width,) or (N, width), or (N, ...) with width entries per row -> tensor (N, width)."""
    value = torch.as_tensor(value, device=device).to(dtype)
    if value.dim() == 1:
        value = value.unsqueeze(0)
    if value.dim() < 2 or math.prod(value.shape[1:]) != width:
        raise ValueError(f"{name} must have shape (B, {width}), got {tuple(value.shape)}")
    return value.reshape(value.shape[0], width)


def _reindex_skinning_weights(module, _incompatible_keys):
    module._index_skinning_weights()


class BodyModel(nn.Module):
    """A posable, shapeable SMPL-family body with per-batch learnable parameters.

    bm_path: official .npz/.pkl model file. model_type: 'smpl' | 'smplh' | 'smplx' | 'mano', or None to
    detect it from the file. params: optional initial values of the parameters below, by name.
    num_betas, num_expressions (SMPL-X), num_dmpls (SMPL/SMPL-H, with path_dmpl holding 'eigvec'):
    sizes of the shape spaces. use_posedirs: apply pose-corrective blend shapes when the file has
    non-zero ones. dtype: floating type of every buffer and parameter.

    Learnable parameters (nn.Parameter, first dim batch_size): trans (B,3), root_orient (B,3),
    pose_body (B,63), pose_hand (B,6|90|45), pose_jaw (B,3), pose_eye (B,6), betas (B,num_betas),
    expression (B,num_expressions), dmpls (B,num_dmpls); only those the model type has.
    """

    def __init__(self, bm_path, model_type=None, params=None, num_betas=10, batch_size=1, num_dmpls=None,
                 path_dmpl=None, num_expressions=10, use_posedirs=True, dtype=torch.float32):
        super().__init__()
        self.bm_path = str(bm_path)
        data = load_model_file(bm_path)
        file_type = detect_model_type(data, self.bm_path)
        if model_type is not None:
            model_type = str(model_type).lower()
            if model_type not in MODEL_TYPES:
                raise ValueError(f"model_type must be one of {MODEL_TYPES}, got {model_type!r}")
            if model_type != file_type:
                raise ValueError(f"model_type {model_type!r} contradicts {self.bm_path}, which is a "
                                 f"{file_type!r} model ({len(data['kintree_table'][0])} joints)")
        self.model_type = file_type
        self.batch_size = int(batch_size)
        self.parents = _parents_from_kintree(data["kintree_table"], self.bm_path)
        self._tree = KinematicTree(self.parents)

        def as_tensor(x):
            return torch.as_tensor(np.asarray(x, dtype=np.float64), dtype=dtype)

        v_template = as_tensor(data["v_template"])
        num_verts = v_template.shape[0]
        self._check_shape(data, "v_template", (num_verts, 3))
        self._check_shape(data, "weights", (num_verts, len(self.parents)))
        self._check_shape(data, "J_regressor", (len(self.parents), num_verts))
        shapedirs = np.asarray(data["shapedirs"])
        if shapedirs.ndim != 3 or shapedirs.shape[:2] != (num_verts, 3):
            raise ValueError(f"{self.bm_path}: shapedirs must have shape ({num_verts}, 3, K), got {shapedirs.shape}")

        self.num_betas = int(num_betas)
        self.num_expressions = int(num_expressions) if self.model_type == "smplx" else 0
        self.num_dmpls = int(num_dmpls) if num_dmpls else 0
        dirs = [self._shape_columns(shapedirs, 0, self.num_betas, "betas")]
        if self.model_type == "smplx":
            start = SMPLX_SHAPE_SPACE if shapedirs.shape[-1] > SMPLX_SHAPE_SPACE else SMPLX_SMALL_SHAPE_SPACE
            if self.num_betas > start:
                raise ValueError(f"{self.bm_path}: asked for {self.num_betas} betas, but this SMPL-X file has "
                                 f"{shapedirs.shape[-1]} shape columns and its expressions start at column "
                                 f"{start}; use num_betas <= {start}")
        if self.num_expressions:
            dirs.append(self._shape_columns(shapedirs, start, self.num_expressions, "expression"))
        if self.num_dmpls:
            dirs.append(self._load_dmpls(path_dmpl, num_verts))

        self.register_buffer("v_template", v_template)
        self.register_buffer("f", torch.as_tensor(np.asarray(data["f"], dtype=np.int64)))
        self.register_buffer("shapedirs", as_tensor(np.concatenate(dirs, axis=-1)))
        self.register_buffer("J_regressor", as_tensor(data["J_regressor"]))
        self.register_buffer("weights", as_tensor(data["weights"]))
        # Joints are linear in the shape coefficients: regress them once from template and directions.
        self.register_buffer("J_template", self.J_regressor @ self.v_template)
        self.register_buffer("J_shapedirs", torch.einsum("jv,vck->jck", self.J_regressor, self.shapedirs))

        posedirs = data.get("posedirs")
        if use_posedirs and posedirs is not None and np.any(posedirs):
            num_feats = 9 * (len(self.parents) - 1)
            # (P, 3 V), stored as the transpose of the file's contiguous (3 V, P) layout, which the
            # fast path multiplies with directly
            self.register_buffer("posedirs", as_tensor(np.asarray(posedirs).reshape(-1, num_feats)).t())
        else:
            self.posedirs = None
        # The fast skinning path (lbs.py); False selects the plain dense path, e.g. for second derivatives,
        # which the fast path's embedding_bag does not have.
        self.sparse_skinning = True
        self._index_skinning_weights()
        self.register_load_state_dict_post_hook(_reindex_skinning_weights)  # a named function: picklable

        self._init_parameters(params or {}, dtype)

    def _index_skinning_weights(self):
        """Each vertex's non-zero skinning weights (all of them), for the fast skinning path. Derived
        from `weights`, so not saved; rebuilt when a state dict is loaded."""
        for name, value in zip(("joints", "values", "offsets"),
                               SparseSkinningWeights.from_dense(self.weights).tensors()):
            self.register_buffer(f"_skin_{name}", value, persistent=False)

    def _check_shape(self, data, key, shape):
        actual = np.asarray(data[key]).shape
        if actual != shape:
            raise ValueError(f"{self.bm_path}: {key} must have shape {shape}, got {actual}")

    def _shape_columns(self, shapedirs, start, count, what):
        if start + count > shapedirs.shape[-1]:
            raise ValueError(f"{self.bm_path}: asked for {count} {what} starting at shapedirs column {start}, "
                             f"but the file has only {shapedirs.shape[-1]} shape columns")
        return shapedirs[..., start:start + count]

    def _load_dmpls(self, path_dmpl, num_verts):
        if self.model_type not in ("smpl", "smplh"):
            raise ValueError(f"DMPLs exist for SMPL and SMPL-H only, not for {self.model_type!r}")
        if path_dmpl is None:
            raise ValueError("num_dmpls was given without path_dmpl (a .npz with an 'eigvec' array)")
        eigvec = load_model_file(path_dmpl, required=("eigvec",))["eigvec"]
        if eigvec.ndim != 3 or eigvec.shape[:2] != (num_verts, 3) or eigvec.shape[2] < self.num_dmpls:
            raise ValueError(f"{path_dmpl}: eigvec must have shape ({num_verts}, 3, >={self.num_dmpls}), "
                             f"got {eigvec.shape}")
        return eigvec[..., :self.num_dmpls]

    def _param_widths(self) -> dict:
        widths = {"trans": 3, **dict(POSE_PARTS[self.model_type]), "betas": self.num_betas}
        if self.num_expressions:
            widths["expression"] = self.num_expressions
        if self.num_dmpls:
            widths["dmpls"] = self.num_dmpls
        return widths

    def _init_parameters(self, params: dict, dtype):
        widths = self._param_widths()
        unknown = set(params) - set(widths)
        if unknown:
            raise ValueError(f"unknown entries in params: {sorted(unknown)}; a {self.model_type} model has "
                             f"{sorted(widths)}")
        for name, width in widths.items():
            if name in params:
                value = _as_batch(name, params[name], width, dtype, None)
                if value.shape[0] not in (1, self.batch_size):
                    raise ValueError(f"params[{name!r}] must have shape ({self.batch_size}, {width}), "
                                     f"got {tuple(torch.as_tensor(params[name]).shape)}")
                value = value.expand(self.batch_size, width).clone()
            else:
                value = torch.zeros(self.batch_size, width, dtype=dtype)
            self.register_parameter(name, nn.Parameter(value, requires_grad=True))

    @property
    def num_joints(self) -> int:
        return len(self.parents)

    def _gather_inputs(self, given: dict) -> tuple:
        """Resolve each input against the stored parameter and find the common batch size."""
        widths = self._param_widths()
        ref = self.v_template
        values = {}
        for name, width in widths.items():
            value = given.get(name)
            if value is None:
                values[name] = getattr(self, name)
                continue
            values[name] = _as_batch(name, value, width, ref.dtype, ref.device)
        sizes = {v.shape[0] for k, v in values.items() if given.get(k) is not None}
        batch = max(sizes) if sizes else self.batch_size
        for name, value in values.items():
            if value.shape[0] != batch:
                if value.shape[0] != 1:
                    raise ValueError(f"{name} has batch {value.shape[0]} but other inputs have batch {batch}; "
                                     f"expected shape ({batch}, {widths[name]}) or (1, {widths[name]})")
                values[name] = value.expand(batch, -1)
        return values, batch

    def forward(self, root_orient=None, pose_body=None, pose_hand=None, pose_jaw=None, pose_eye=None,
                betas=None, trans=None, dmpls=None, expression=None, v_template=None, return_dict=False,
                **kwargs):
        """Pose and shape the body. Every argument overrides the stored parameter of the same name.

        Returns BodyModelOutput (a dict with return_dict=True) with v (B,V,3) vertices, f (F,3) faces,
        Jtr (B,J,3) posed joints, full_pose (B,3J), betas and the pose parts.
        """
        if kwargs:
            raise TypeError(f"BodyModel.forward got unexpected arguments {sorted(kwargs)}")
        given = dict(root_orient=root_orient, pose_body=pose_body, pose_hand=pose_hand, pose_jaw=pose_jaw,
                     pose_eye=pose_eye, betas=betas, trans=trans, dmpls=dmpls, expression=expression)
        unsupported = [k for k, v in given.items() if v is not None and k not in self._param_widths()]
        if unsupported:
            raise ValueError(f"a {self.model_type} model has no {unsupported}")
        values, batch = self._gather_inputs(given)

        full_pose = torch.cat([values[name] for name, _ in POSE_PARTS[self.model_type]], dim=1)
        coeffs = [values["betas"]] + [values[k] for k in ("expression", "dmpls") if k in values]
        shape_coeffs = torch.cat(coeffs, dim=1)

        if v_template is None:
            template, J_template, J_shapedirs = self.v_template, self.J_template, self.J_shapedirs
        else:
            template = torch.as_tensor(v_template, device=self.v_template.device).to(self.v_template.dtype)
            if template.shape[-2:] != self.v_template.shape or template.dim() not in (2, 3) \
                    or (template.dim() == 3 and template.shape[0] not in (1, batch)):
                raise ValueError(f"v_template must have shape {tuple(self.v_template.shape)} or "
                                 f"({batch}, {self.v_template.shape[0]}, 3), got {tuple(template.shape)}")
            J_template = J_shapedirs = None  # regress joints from the given template
        verts, joints = lbs(full_pose, shape_coeffs, template, self.shapedirs, self.posedirs,
                           self.J_regressor, self.weights, self._tree, J_template, J_shapedirs,
                           sparse_weights=(self._skin_joints, self._skin_values, self._skin_offsets)
                           if self.sparse_skinning else None)
        trans = values["trans"].unsqueeze(1)
        out = BodyModelOutput(v=verts + trans, f=self.f, Jtr=joints + trans, full_pose=full_pose, **values)
        return dict(out) if return_dict else out

    def r(self) -> np.ndarray:
        """Current vertices as numpy, (B, V, 3)."""
        with torch.no_grad():
            return self.forward().v.detach().cpu().numpy()

    def extra_repr(self) -> str:
        return (f"model_type={self.model_type!r}, file={Path(self.bm_path).name!r}, "
                f"vertices={self.v_template.shape[0]}, joints={self.num_joints}, num_betas={self.num_betas}")
