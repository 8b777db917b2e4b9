"""BodyModel: SMPL, SMPL-H, SMPL-X and MANO from their official model files.

Poses are axis-angle in radians, lengths in metres. B is the batch size, V the vertex count and
J the joint count of the model's kinematic tree (SMPL 24, SMPL-H 52, SMPL-X 55, MANO 16).
"""

import inspect
import math
import weakref
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from human_body_prior.body_model.lbs import (
    SparseSkinningWeights,
    joint_rows,
    lbs,
    pose_skeleton,
    posed_mesh,
    rest_joints_without_mesh,
)
from human_body_prior.body_model.model_io import load_model_file
from human_body_prior.geometry.kinematics import KinematicTree, MovingJoints
from human_body_prior.model_types.spec import MODEL_TYPES, SPECS, identify_model_type, model_spec  # noqa: F401 (MODEL_TYPES: re-export)


class BodyModelOutput(dict):
    """Result of BodyModel.forward; a dict whose entries are also attributes (out.v, out.Jtr, ...).

    An entry may be deferred: computed on first use, under the grad mode of the call that made it, then
    kept. BodyModel defers the mesh ``v``, which costs far more than the joints, so that a caller who reads
    only ``Jtr`` (an IK source module, a joint loss) never pays for it; iterating, ``dict(out)`` or
    ``{**out}`` settle every entry first.
    """

    def defer(self, name: str, compute) -> None:
        """Make ``out[name]`` the value ``compute()`` returns, computed on first use."""
        modes = (torch.is_grad_enabled(), torch.is_inference_mode_enabled())
        self.__dict__.setdefault("_deferred", {})[name] = (compute, modes)

    def __missing__(self, name):
        compute, (grad, inference) = self.__dict__.get("_deferred", {}).pop(name, (None, (None, None)))
        if compute is None:
            raise KeyError(name)
        with torch.inference_mode(inference), torch.set_grad_enabled(grad):
            value = self[name] = compute()
        return value

    def _settle(self) -> None:
        for name in list(self.__dict__.get("_deferred", ())):
            self[name]

    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(f"BodyModel output has no {name!r}; it has {sorted(self)}") from None

    def __contains__(self, name):
        return dict.__contains__(self, name) or name in self.__dict__.get("_deferred", ())

    def get(self, name, default=None):
        return self[name] if name in self else default

    def __iter__(self):
        self._settle()
        return dict.__iter__(self)

    def __len__(self):
        return dict.__len__(self) + len(self.__dict__.get("_deferred", ()))

    def __eq__(self, other):
        self._settle()
        return dict.__eq__(self, other)

    __hash__ = None

    def __repr__(self):
        self._settle()
        return dict.__repr__(self)

    def __reduce__(self):
        return dict, (dict(self),)

    def keys(self):
        self._settle()
        return dict.keys(self)

    def values(self):
        self._settle()
        return dict.values(self)

    def items(self):
        self._settle()
        return dict.items(self)

    def copy(self):
        return dict(self)


def _parents_from_kintree(kintree, fname) -> list:
    kintree = np.asarray(kintree)
    if kintree.ndim != 2 or kintree.shape[0] != 2:
        raise ValueError(f"{fname}: kintree_table must have shape (2, J), got {kintree.shape}")
    parents = kintree[0].astype(np.int64)
    parents[0] = -1  # official files store the root's parent as 2**32 - 1
    return parents.tolist()


def _float_tensor(value, dtype) -> torch.Tensor:
    """An array of a model file as a floating tensor of ``dtype`` (read as float64 first)."""
    return torch.as_tensor(np.asarray(value, dtype=np.float64), dtype=dtype)


def _numeric_tensor(name, value, device) -> torch.Tensor:
    """torch.as_tensor(value) of a number, array or tensor; anything else a ValueError naming ``name``."""
    if isinstance(value, (str, bytes)):
        raise ValueError(f"{name} must be numbers (a tensor or array), got the text {value!r}")
    try:
        value = torch.as_tensor(value, device=device)
    except (TypeError, RuntimeError, ValueError) as err:
        raise ValueError(f"{name} must be numbers (a tensor or array), got {type(value).__name__} "
                         f"that torch cannot read as numbers ({' '.join(str(err).split())})") from None
    if value.is_complex() or value.dtype == torch.bool:
        raise ValueError(f"{name} must be real numbers, got a {value.dtype} tensor")
    return value


def _as_batch(name, value, width, dtype, device) -> torch.Tensor:
    """value (width,) or (N, width), or (N, ...) with width entries per row -> tensor (N, width)."""
    value = _numeric_tensor(name, value, device).to(dtype)
    if value.dim() == 1:
        value = value.unsqueeze(0)
    if value.dim() < 2 or math.prod(value.shape[1:]) != width:
        raise ValueError(f"{name} must have shape (B, {width}), got {tuple(value.shape)}")
    return value.reshape(value.shape[0], width)


def _reindex_skinning_weights(module, _incompatible_keys):
    module._index_skinning_weights()


def _arguments_2021(bm_fname=None, num_betas=10, num_dmpls=None, dmpl_fname=None, num_expressions=None,
                    use_posedirs=True, model_type=None, dtype=torch.float32, persistant_buffer=False, *,
                    bm_path=None, path_dmpl=None, params=None, batch_size=1, v_template=None):
    """BodyModel's arguments in the 2021 (v2) positional order."""


def _arguments_2019(bm_path=None, model_type=None, params=None, num_betas=10, batch_size=1, num_dmpls=None,
                    path_dmpl=None, num_expressions=None, use_posedirs=True, dtype=torch.float32, *,
                    bm_fname=None, dmpl_fname=None, persistant_buffer=False, v_template=None):
    """BodyModel's arguments in the 2019 (v1) positional order (model type second, as a string)."""


def _arguments_seed(bm_path=None, params=None, num_betas=10, batch_size=1, v_template=None, num_dmpls=None,
                    path_dmpl=None, num_expressions=None, use_posedirs=True, dtype=torch.float32, *,
                    bm_fname=None, dmpl_fname=None, persistant_buffer=False, model_type=None):
    """BodyModel's arguments in the seed-era 2019 positional order (params second: None or a dict)."""


_SIGNATURES = {layout: inspect.signature(f) for layout, f in
               (("2021", _arguments_2021), ("2019", _arguments_2019), ("seed", _arguments_seed))}
# (2021 name, 2019 name) of the arguments whose name changed
_RENAMED = (("bm_fname", "bm_path"), ("dmpl_fname", "path_dmpl"))


def _resolve_arguments(args: tuple, kwargs: dict) -> dict:
    """Bind BodyModel's arguments. A string second positional argument is the 2019 model_type, None or a
    dict the seed-era params, anything else the 2021 num_betas; either generation's keywords are
    accepted, but not both names of one thing."""
    layout = "2021"
    if len(args) > 1 and isinstance(args[1], str):
        layout = "2019"
    elif len(args) > 1 and (args[1] is None or isinstance(args[1], Mapping)):
        layout = "seed"
    try:
        bound = _SIGNATURES[layout].bind(*args, **kwargs)
    except TypeError as err:
        raise TypeError(f"BodyModel: {err}") from None
    bound.apply_defaults()
    values = dict(bound.arguments)
    for new, old in _RENAMED:
        if values[new] is not None and values[old] is not None:
            raise TypeError(f"BodyModel got both {new}= and {old}= (the 2021 and 2019 names of one argument); "
                            "pass one of them")
        values[new] = values[new] if values[new] is not None else values.pop(old)
        values.pop(old, None)
    if values["bm_fname"] is None:
        raise TypeError("BodyModel needs the model file: BodyModel(bm_fname=...) (2019: bm_path=...)")
    return values


def _count(name: str, value, minimum: int) -> int:
    """An integer argument >= minimum, or a ValueError naming it."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"BodyModel: {name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


class BodyModel(nn.Module):
    """A posable, shapeable SMPL-family body with per-batch learnable parameters.

    Both generations' signatures work, by keyword or by position:
    2021: BodyModel(bm_fname, num_betas=10, num_dmpls=None, dmpl_fname=None, num_expressions=None,
          use_posedirs=True, model_type=None, dtype=torch.float32, persistant_buffer=False)
    2019: BodyModel(bm_path, model_type, params=None, num_betas=10, batch_size=1, num_dmpls=None,
          path_dmpl=None, num_expressions=10, use_posedirs=True, dtype=torch.float32)
    seed (2019): BodyModel(bm_path, params=None, num_betas=10, batch_size=1, v_template=None, num_dmpls=None,
          path_dmpl=None, num_expressions=10, use_posedirs=True, dtype=torch.float32)
    The second positional argument tells them apart: a string is model_type, None or a dict params, a
    number num_betas.
    Passing both names of one argument (bm_fname and bm_path, dmpl_fname and path_dmpl) is a TypeError.

    v_template (V, 3): a custom rest template replacing the file's (joints are regressed from it).
    bm_fname / bm_path: official .npz/.pkl model file. model_type: 'smpl' | 'smplh' | 'smplx' | 'mano', or
    None to detect it from the file. params: optional initial values of the parameters below, by name.
    num_betas, num_expressions (SMPL-X; None: 10), num_dmpls (SMPL/SMPL-H): sizes of the shape spaces.
    dmpl_fname / path_dmpl: the DMPL file, e.g. AMASS's dmpls/<gender>/model.npz ('eigvec' (V, 3, >= num_dmpls)).
    use_posedirs: apply pose-corrective blend shapes when the file has non-zero ones. dtype: floating type of
    every buffer and parameter. persistant_buffer (upstream spelling): whether the model's arrays go into
    state_dict (False, as upstream: checkpoints of modules holding a BodyModel carry only the parameters).

    Learnable parameters (nn.Parameter, first dim batch_size): trans (B,3), root_orient (B,3),
    pose_body (B,63), pose_hand (B,6|90|45), pose_jaw (B,3), pose_eye (B,6), betas (B,num_betas),
    expression (B,num_expressions), dmpls (B,num_dmpls); only those the model type has.
    Buffers read by upstream code: f (F, 3) faces, kintree_table (2, J) long (parent -1 at the root),
    v_template, shapedirs (V, 3, K), posedirs (P, 3 V), J_regressor (J, V), weights (V, J).
    """

    def __init__(self, *args, **kwargs):
        super().__init__()
        a = _resolve_arguments(args, kwargs)
        self.bm_path = str(a["bm_fname"])
        data = load_model_file(a["bm_fname"])
        self.model_type = self._file_model_type(data, a["model_type"])
        self.batch_size = _count("batch_size", a["batch_size"], 1)
        self.parents = _parents_from_kintree(data["kintree_table"], self.bm_path)
        self._tree = KinematicTree(self.parents)
        self._moving = {}  # frozenset of pose parts known to be zero -> MovingJoints (pose_skeleton)
        v_template = self._template(data, a["v_template"], a["dtype"])
        shapedirs = self._shape_directions(data, a, v_template.shape[0])
        self._register_arrays(data, v_template, shapedirs, a["dtype"], bool(a["persistant_buffer"]),
                              a["use_posedirs"])
        # The fast skinning path (lbs.py; the dense one at batches up to 4, where it is faster); False selects
        # the plain dense path at every batch (same results and derivatives).
        self.sparse_skinning = True
        self._index_skinning_weights()
        self.register_load_state_dict_post_hook(_reindex_skinning_weights)  # a named function: picklable
        self._init_parameters(a["params"] or {}, a["dtype"])
        self.use_dmpl = bool(self.num_dmpls)

    @property
    def spec(self):
        """The :class:`~human_body_prior.model_types.spec.ModelSpec` of this model's type."""
        return SPECS[self.model_type]

    def _file_model_type(self, data: dict, model_type) -> str:
        """The type of the file's arrays; a ValueError when the model_type argument (if given) differs."""
        file_type = identify_model_type(data, self.bm_path)
        if model_type is not None:
            model_type = model_spec(str(model_type).lower()).name
            if model_type != file_type:
                raise ValueError(f"model_type {model_type!r} contradicts {self.bm_path}, which is a "
                                 f"{file_type!r} model ({len(data['kintree_table'][0])} joints)")
        return file_type

    def _template(self, data: dict, custom, dtype) -> torch.Tensor:
        """The rest template (V, 3): the file's, or the v_template argument; checks the skinning weights
        (V, J) and joint regressor (J, V) against it."""
        v_template = _float_tensor(data["v_template"], dtype)
        num_verts = v_template.shape[0]
        self._check_shape(data, "v_template", (num_verts, 3))
        if custom is not None:
            v_template = self._custom_template(custom, v_template, dtype)
        self._check_shape(data, "weights", (num_verts, self.num_joints))
        self._check_shape(data, "J_regressor", (self.num_joints, num_verts))
        return v_template

    def _shape_directions(self, data: dict, a: dict, num_verts: int) -> np.ndarray:
        """Sets num_betas, num_expressions and num_dmpls; returns their blend shapes side by side,
        (V, 3, num_betas + num_expressions + num_dmpls)."""
        shapedirs = np.asarray(data["shapedirs"])
        if shapedirs.ndim != 3 or shapedirs.shape[:2] != (num_verts, 3):
            raise ValueError(f"{self.bm_path}: shapedirs must have shape ({num_verts}, 3, K), got {shapedirs.shape}")
        self.num_betas = _count("num_betas", a["num_betas"], 0)
        num_expressions = 10 if a["num_expressions"] is None else _count("num_expressions", a["num_expressions"], 0)
        self.num_expressions = num_expressions if self.spec.has_expression else 0
        self.num_dmpls = _count("num_dmpls", a["num_dmpls"], 0) if a["num_dmpls"] is not None else 0
        dirs = [self._shape_columns(shapedirs, 0, self.num_betas, "betas")]
        if self.spec.has_expression:
            start = self.spec.expression_start(shapedirs.shape[-1])
            if self.num_betas > start:
                raise ValueError(f"{self.bm_path}: asked for {self.num_betas} betas, but this {self.spec.title} "
                                 f"file has {shapedirs.shape[-1]} shape columns and its expressions start at "
                                 f"column {start}; use num_betas <= {start}")
        if self.num_expressions:
            dirs.append(self._shape_columns(shapedirs, start, self.num_expressions, "expression"))
        if self.num_dmpls:
            dirs.append(self._load_dmpls(a["dmpl_fname"], num_verts))
        return np.concatenate(dirs, axis=-1)

    def _register_arrays(self, data, v_template, shapedirs, dtype, persistent: bool, use_posedirs) -> None:
        """The buffers of the class docstring, plus the joints' template J_template (J, 3) and shape
        directions J_shapedirs (J, 3, K): joints are linear in the shape coefficients, so they are
        regressed once. posedirs is None without (non-zero) pose correctives or with use_posedirs off."""
        buffers = {"v_template": v_template, "f": torch.as_tensor(np.asarray(data["f"], dtype=np.int64)),
                   "kintree_table": torch.tensor([self.parents, list(range(self.num_joints))]),
                   "shapedirs": _float_tensor(shapedirs, dtype), "J_regressor": _float_tensor(data["J_regressor"], dtype),
                   "weights": _float_tensor(data["weights"], dtype)}
        for name, value in buffers.items():
            self.register_buffer(name, value, persistent=persistent)
        self.register_buffer("J_template", self.J_regressor @ self.v_template, persistent=persistent)
        self.register_buffer("J_shapedirs", torch.einsum("jv,vck->jck", self.J_regressor, self.shapedirs),
                             persistent=persistent)
        posedirs = data.get("posedirs")
        if use_posedirs and posedirs is not None and np.any(posedirs):
            # (P, 3 V), stored as the transpose of the file's contiguous (3 V, P) layout, which the
            # fast path multiplies with directly
            posedirs = _float_tensor(np.asarray(posedirs).reshape(-1, self.spec.posedirs_width), dtype).t()
            self.register_buffer("posedirs", posedirs, persistent=persistent)
        else:
            self.posedirs = None

    def _custom_template(self, value, file_template, dtype) -> torch.Tensor:
        """The v_template argument (V, 3) or (1, V, 3), checked against the file's vertex count."""
        value = _numeric_tensor("v_template", value, None).to(dtype)
        if value.dim() == 3 and value.shape[0] == 1:
            value = value[0]
        if value.shape != file_template.shape or not bool(torch.isfinite(value).all()):
            raise ValueError(f"v_template must be finite with shape {tuple(file_template.shape)} (the vertices of "
                             f"{self.bm_path}), got {tuple(value.shape)}")
        return value.clone()

    @property
    def init_v_template(self) -> torch.Tensor:
        """The rest template as (1, V, 3), the 2021 name of ``v_template``."""
        return self.v_template.unsqueeze(0)

    def _index_skinning_weights(self):
        """Each vertex's non-zero skinning weights (all of them), for the fast skinning path. Derived
        from `weights`, so not saved; rebuilt when a state dict is loaded."""
        for name, value in zip(("joints", "values", "offsets", "t_vertices", "t_values", "t_offsets"),
                               SparseSkinningWeights.from_dense(self.weights).tensors()):
            self.register_buffer(f"_skin_{name}", value, persistent=False)

    def _sparse_weights(self) -> tuple:
        return (self._skin_joints, self._skin_values, self._skin_offsets, self._skin_t_vertices,
                self._skin_t_values, self._skin_t_offsets)

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
        if not self.spec.has_dmpls:
            with_dmpls = " and ".join(s.title for s in SPECS.values() if s.has_dmpls)
            raise ValueError(f"DMPLs exist for {with_dmpls} only, not for {self.model_type!r}")
        if path_dmpl is None:
            raise ValueError("num_dmpls was given without dmpl_fname (2019: path_dmpl), the DMPL file, "
                             "e.g. AMASS's dmpls/<gender>/model.npz with an 'eigvec' array")
        eigvec = load_model_file(path_dmpl, required=("eigvec",))["eigvec"]
        if eigvec.ndim != 3 or eigvec.shape[:2] != (num_verts, 3) or eigvec.shape[2] < self.num_dmpls:
            raise ValueError(f"{path_dmpl}: eigvec must have shape ({num_verts}, 3, >={self.num_dmpls}), "
                             f"got {eigvec.shape}")
        return eigvec[..., :self.num_dmpls]

    def _param_widths(self) -> dict:
        return self.spec.parameter_widths(self.num_betas, self.num_expressions, self.num_dmpls)

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

    @property
    def num_skinning_weights(self) -> int:
        """The number of non-zero skinning weights: what the fast skinning path blends per body."""
        return int(self._skin_values.numel())

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
        empty = [k for k, v in values.items() if given.get(k) is not None and v.shape[0] == 0]
        if empty:
            raise ValueError(f"{empty[0]} has batch 0; BodyModel needs at least one row, "
                             f"shape (B, {widths[empty[0]]}) with B >= 1")
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
                betas=None, trans=None, dmpls=None, expression=None, v_template=None, joints=None,
                v_shaped=None, return_dict=False, **kwargs):
        """Pose and shape the body. Every argument overrides the stored parameter of the same name.

        v_template (V, 3) or (B, V, 3): a different rest template (shape blend shapes still apply).
        v_shaped (V, 3) or (B, V, 3): the shaped rest mesh itself; shape blending is skipped, so betas,
        expression and dmpls have no effect. joints (J, 3) or (B, J, 3): the rest joint locations to pose
        about, instead of those regressed from the shaped mesh.
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

        full_pose = torch.cat([values[name] for name, _ in self.spec.pose_parts], dim=1)
        coeffs = [values["betas"]] + [values[k] for k in ("expression", "dmpls") if k in values]
        shape_coeffs = torch.cat(coeffs, dim=1)

        template, J_template, J_shapedirs = self.v_template, self.J_template, self.J_shapedirs
        if v_template is not None and v_shaped is not None:
            raise ValueError("give v_template or v_shaped, not both (v_shaped already includes the template)")
        if v_template is not None or v_shaped is not None:
            template = self._rest_array("v_shaped" if v_shaped is not None else "v_template",
                                        v_shaped if v_shaped is not None else v_template, self.v_template, batch)
            J_template = J_shapedirs = None  # regress joints from the given mesh
            if v_shaped is not None:
                shape_coeffs = shape_coeffs.new_zeros(batch, 0)
        rest_joints = None if joints is None else self._rest_array("joints", joints, self.J_template, batch)
        shapedirs = self.shapedirs[..., :0] if v_shaped is not None else self.shapedirs
        sparse = self._sparse_weights() if self.sparse_skinning else None
        trans = values["trans"].unsqueeze(1)
        out = BodyModelOutput(f=self.f, full_pose=full_pose, **values)
        rest_joints = rest_joints_without_mesh(shape_coeffs, J_template, J_shapedirs, rest_joints)
        if rest_joints is None:  # the joints are regressed from the shaped mesh: all at once
            verts, posed_joints = lbs(full_pose, shape_coeffs, template, shapedirs, self.posedirs, self.J_regressor,
                                      self.weights, self._tree, sparse_weights=sparse)
            out.update(v=verts + trans, Jtr=posed_joints + trans)
        else:  # the joints need no mesh: the mesh is computed when it is first used
            moving = self._moving_joints(given, values)
            rot_mats, posed_joints, transforms = pose_skeleton(full_pose, rest_joints, self._tree, moving)
            out["Jtr"] = posed_joints + trans
            moved = values["trans"].clone()  # an optimiser may step the stored translation before v is read
            posedirs = self.posedirs if moving is None else self._posedirs_of(moving)
            out.defer("v", lambda: posed_mesh(rot_mats, transforms, shape_coeffs, template, shapedirs,
                                              posedirs, self.weights, sparse, moved))
        return dict(out) if return_dict else out

    def _moving_joints(self, given: dict, values: dict):
        """The MovingJoints of this call when some pose parts are known to be zero, else None: parts not
        given, whose stored parameter is zero and takes no gradient in this call (on the CPU, where checking the
        stored values costs nothing; on a GPU it would wait for the device). E.g. the hands and face
        of an SMPL-X model that a body-only caller never poses."""
        if self.v_template.device.type != "cpu":
            return None
        grad = torch.is_grad_enabled()
        zero = frozenset(name for name, _ in self.spec.pose_parts if given.get(name) is None
                         and not (grad and values[name].requires_grad) and not bool(values[name].any()))
        if not zero:
            return None
        cache = self.__dict__.setdefault("_moving", {})  # absent from a module pickled by an older version
        if zero not in cache:
            joints, start = [], 0
            for name, width in self.spec.pose_parts:
                if name not in zero:
                    joints += range(start // 3, (start + width) // 3)
                start += width
            moving = MovingJoints.with_ancestors(self._tree, joints)
            cache[zero] = None if len(moving.index) == len(self._tree) else moving
        return cache[zero]

    def _posedirs_of(self, moving: MovingJoints):
        """posedirs for a call in which only the ``moving`` joints turn: their rows copied into one
        block (lbs.JointRows; a body-only SMPL-X call reads 189 contiguous rows of 486, one pass
        instead of a strided one, about 1 ms less per pass at batch 1). One such copy is kept, rebuilt
        when posedirs is replaced or changed in place; a fresh one, through which the gradient flows, when
        posedirs takes gradients; None without posedirs."""
        posedirs = self.posedirs
        if posedirs is None or posedirs.requires_grad:
            return posedirs if posedirs is None else joint_rows(posedirs, moving)
        key = (moving, weakref.ref(posedirs), posedirs._version)
        cached = self.__dict__.get("_joint_rows")
        if cached is None or cached[0][0] is not moving or cached[0][1]() is not posedirs \
                or cached[0][2] != posedirs._version:
            cached = self.__dict__["_joint_rows"] = (key, joint_rows(posedirs, moving))
        return cached[1]

    def __getstate__(self):  # the copy of _posedirs_of is derived data: not pickled, nor deep-copied
        state = super().__getstate__()
        state.pop("_joint_rows", None)
        return state

    def _rest_array(self, name, value, like, batch):
        """A per-call rest array (rows, 3) or (B, rows, 3) shaped like ``like`` (rows, 3), as a tensor."""
        value = _numeric_tensor(name, value, like.device).to(like.dtype)
        if value.shape[-2:] != like.shape or value.dim() not in (2, 3) \
                or (value.dim() == 3 and value.shape[0] not in (1, batch)):
            raise ValueError(f"{name} must have shape {tuple(like.shape)} or ({batch}, {like.shape[0]}, 3), "
                             f"got {tuple(value.shape)}")
        return value

    def r(self) -> np.ndarray:
        """Current vertices as numpy, (B, V, 3)."""
        with torch.no_grad():
            return self.forward().v.detach().cpu().numpy()

    def extra_repr(self) -> str:
        return (f"model_type={self.model_type!r}, file={Path(self.bm_path).name!r}, "
                f"vertices={self.v_template.shape[0]}, joints={self.num_joints}, num_betas={self.num_betas}")
