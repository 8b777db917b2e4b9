"""BodyModel whose body (and optionally hand) pose is the latent code of a VPoser.

Optimising ``bm.poZ_body`` (B, latentD) instead of ``bm.pose_body`` keeps the body in the space of
natural poses; an L2 penalty on ``poZ_body`` pulls it towards the mean of the prior.
"""

import torch
import torch.nn as nn

from human_body_prior.body_model.body_model import BodyModel
from human_body_prior.model_types.joints import (
    NUM_BODY_JOINTS,
    NUM_POSE_BODY_JOINTS,
    POSE_PARTS,
)
from human_body_prior.priors import PosePrior, load_prior_and_settings
from human_body_prior.priors.interface import frozen
from human_body_prior.priors.sampling import seeded_generator

POSER_TYPES = ("vposer",)
_BODY_WIDTHS = (3 * NUM_POSE_BODY_JOINTS, 3 * NUM_BODY_JOINTS)  # pose_body, or root_orient + pose_body
_HAND_WIDTH = dict(POSE_PARTS["mano"])["pose_hand"]  # one hand: 15 joints x 3


def _poser_width(poser) -> int:
    return poser.num_joints * 3


def _is_one_poser(x) -> bool:
    """A PosePrior instance or one folder path (not a pair of them)."""
    return isinstance(x, (PosePrior, str, bytes)) or hasattr(x, "__fspath__")


class BodyModelWithPoser(BodyModel):
    """A BodyModel posed through VPoser latent codes.

    poser_type: 'vposer'. smpl_exp_dir: the body's VPoser, a latent PosePrior instance or an experiment folder
    (loaded with :func:`human_body_prior.priors.load_prior`; default: the shipped open
    VPoser, ``human_body_prior.default_vposer_dir()``); it must output 21 joints (pose_body) or 22
    (root_orient first, then pose_body). mano_exp_dir: optional hand VPoser(s) with 15 joints, each
    an instance or a folder: one used for both hands, or a (left, right) pair. Any other keyword
    goes to BodyModel (bm_path, batch_size, num_betas, dtype, ...). A VPoser instance is used as it
    is: it becomes a submodule, cast to the body model's dtype, frozen and put in eval mode.

    Learnable latent codes, initialised at zero: poZ_body (B, latentD); with hand posers on SMPL-H /
    SMPL-X also poZ_handL and poZ_handR (B, latentD_hand), on MANO poZ_hand. The pose parameters they
    replace (pose_body, root_orient for a 22-joint poser, pose_hand) are frozen (requires_grad False).
    The posers are submodules (they follow .to(device) and .double()), frozen and kept in eval mode.
    """

    def __init__(self, poser_type="vposer", smpl_exp_dir=None, mano_exp_dir=None, **kwargs):
        if poser_type not in POSER_TYPES:
            raise ValueError(f"poser_type must be one of {POSER_TYPES}, got {poser_type!r} "
                             "(pass the model file as bm_path=...)")
        super().__init__(**kwargs)
        self.poser_type = poser_type
        ref = self.v_template
        self.use_hands = mano_exp_dir is not None
        self.poser_body_pt = None

        if self.model_type in ("smpl", "smplh", "smplx"):
            if smpl_exp_dir is None:
                from human_body_prior import default_vposer_dir
                smpl_exp_dir = default_vposer_dir()
            self.poser_body_pt, self.poser_body_ps = self._load_poser(smpl_exp_dir, _BODY_WIDTHS, "body")
            self.poZ_body = nn.Parameter(torch.zeros(self.batch_size, self.poser_body_pt.latentD, dtype=ref.dtype))
            self.pose_body.requires_grad_(False)
            if _poser_width(self.poser_body_pt) == 3 * NUM_BODY_JOINTS:
                self.root_orient.requires_grad_(False)

        if self.use_hands:
            if self.model_type == "smpl":
                raise ValueError("SMPL has no articulated hands; mano_exp_dir needs an SMPL-H, SMPL-X or MANO model")
            if self.model_type == "mano":
                if not _is_one_poser(mano_exp_dir):
                    raise ValueError("for a MANO model, mano_exp_dir must be one VPoser or one folder")
                self.poser_hand_pt, self.poser_hand_ps = self._load_poser(mano_exp_dir, (_HAND_WIDTH,), "hand")
                self.poZ_hand = nn.Parameter(torch.zeros(self.batch_size, self.poser_hand_pt.latentD, dtype=ref.dtype))
            else:
                left_dir, right_dir = self._hand_dirs(mano_exp_dir)
                self.poser_handL_pt, self.poser_handL_ps = self._load_poser(left_dir, (_HAND_WIDTH,), "left hand")
                self.poser_handR_pt, self.poser_handR_ps = self._load_poser(right_dir, (_HAND_WIDTH,), "right hand")
                self.poZ_handL = nn.Parameter(torch.zeros(self.batch_size, self.poser_handL_pt.latentD, dtype=ref.dtype))
                self.poZ_handR = nn.Parameter(torch.zeros(self.batch_size, self.poser_handR_pt.latentD, dtype=ref.dtype))
            self.pose_hand.requires_grad_(False)
        elif self.model_type == "mano":
            raise ValueError("a MANO model posed through VPoser needs mano_exp_dir (a hand VPoser folder)")

    # ------------------------------------------------------------------ construction helpers
    @staticmethod
    def _hand_dirs(mano_exp_dir):
        if isinstance(mano_exp_dir, (list, tuple)):
            if len(mano_exp_dir) != 2:
                raise ValueError(f"mano_exp_dir must be one folder or a (left, right) pair, got {mano_exp_dir!r}")
            return mano_exp_dir[0], mano_exp_dir[1]
        return mano_exp_dir, mano_exp_dir

    def _load_poser(self, expr_dir, widths, what):
        """A latent PosePrior instance (ps None) or an experiment folder -> (frozen poser, ps)."""
        if isinstance(expr_dir, PosePrior):
            poser, ps, where = expr_dir, None, "given"
        elif not isinstance(expr_dir, (str, bytes)) and not hasattr(expr_dir, "__fspath__"):
            raise TypeError(f"the {what} poser must be a PosePrior (human_body_prior.priors.PosePrior) or a folder, "
                            f"got {type(expr_dir).__name__}")
        else:
            poser, ps = load_prior_and_settings(expr_dir, verbose=True)
            where = f"in {expr_dir}"
        if poser.latentD is None:
            raise ValueError(f"the {what} prior {where} has no latent space; BodyModelWithPoser needs a VPoser")
        width = _poser_width(poser)
        if width not in widths:
            raise ValueError(f"the {what} VPoser {where} outputs {poser.num_joints} joints ({width} values); "
                             f"a {what} poser for {self.model_type} must output {' or '.join(str(w // 3) for w in widths)}")
        return frozen(poser, dtype=self.v_template.dtype), ps

    def _posers(self):
        return [m for m in (self.poser_body_pt, getattr(self, "poser_hand_pt", None),
                            getattr(self, "poser_handL_pt", None), getattr(self, "poser_handR_pt", None))
                if m is not None]

    def train(self, mode: bool = True):
        """Switch the body model's mode; the posers always stay in eval mode (no dropout, fixed BatchNorm)."""
        super().train(mode)
        for poser in self._posers():
            poser.eval()
        return self

    # ------------------------------------------------------------------ decoding
    @staticmethod
    def _decode(poser, z, batch):
        return poser.decode_pose(z).reshape(batch, -1)

    def decode_poses(self, poZ_body=None, poZ_handL=None, poZ_handR=None, poZ_hand=None) -> dict:
        """Latent codes (default: the stored ones) -> the BodyModel pose inputs they stand for, (B, width) each."""
        out = {}
        if self.poser_body_pt is not None:
            z = self.poZ_body if poZ_body is None else poZ_body
            pose = self._decode(self.poser_body_pt, z, z.shape[0])
            if pose.shape[1] == 3 * NUM_BODY_JOINTS:
                out["root_orient"], out["pose_body"] = pose[:, :3], pose[:, 3:]
            else:
                out["pose_body"] = pose
        if self.use_hands:
            if self.model_type == "mano":
                z = self.poZ_hand if poZ_hand is None else poZ_hand
                out["pose_hand"] = self._decode(self.poser_hand_pt, z, z.shape[0])
            else:
                zl = self.poZ_handL if poZ_handL is None else poZ_handL
                zr = self.poZ_handR if poZ_handR is None else poZ_handR
                out["pose_hand"] = torch.cat([self._decode(self.poser_handL_pt, zl, zl.shape[0]),
                                              self._decode(self.poser_handR_pt, zr, zr.shape[0])], dim=1)
        return out

    def forward(self, poZ_body=None, poZ_handL=None, poZ_handR=None, poZ_hand=None, **kwargs):
        """Decode the latent codes (given ones override the stored ones) and pose the body.

        poZ_body (B, latentD) -> pose_body (B, 63) [and root_orient (B, 3) for a 22-joint poser];
        hand codes -> pose_hand. Other keywords go to BodyModel.forward, except the pose parts that
        the posers produce. Returns the BodyModel output with ``.poZ_body`` (and the hand codes) added.
        """
        decoded = self.decode_poses(poZ_body=poZ_body, poZ_handL=poZ_handL, poZ_handR=poZ_handR, poZ_hand=poZ_hand)
        clash = sorted(k for k in decoded if kwargs.get(k) is not None)
        if clash:
            raise ValueError(f"{clash} come from the VPoser latent codes here; pass poZ_body/poZ_hand* instead "
                             "(or use a plain BodyModel)")
        out = super().forward(**decoded, **kwargs)
        if self.poser_body_pt is not None:
            out["poZ_body"] = self.poZ_body if poZ_body is None else poZ_body
        if self.use_hands:
            if self.model_type == "mano":
                out["poZ_hand"] = self.poZ_hand if poZ_hand is None else poZ_hand
            else:
                out["poZ_handL"] = self.poZ_handL if poZ_handL is None else poZ_handL
                out["poZ_handR"] = self.poZ_handR if poZ_handR is None else poZ_handR
        return out

    def randomize_pose(self, seed=None):
        """Draw every latent code from N(0, I) (private generator; global RNG untouched) and store the
        decoded poses in the frozen pose parameters (pose_body, root_orient, pose_hand)."""
        ref = self.v_template
        gen = seeded_generator(seed, ref.device)
        names = [n for n in ("poZ_body", "poZ_hand", "poZ_handL", "poZ_handR") if hasattr(self, n)]
        with torch.no_grad():
            for name in names:
                z = getattr(self, name)
                z.copy_(torch.randn(z.shape, generator=gen, dtype=z.dtype, device=z.device))
            for name, value in self.decode_poses().items():
                getattr(self, name).copy_(value)
