"""The trainer's one checkpoint component: snapshots, the training state and reading weights back.

Everything the trainer writes or reads goes through :class:`ExperimentCheckpoints`: the snapshot
of an improved epoch (2019 layout for VPoser v1, V02 layout for v2), the resumable training state,
and the weights of a snapshot (for resuming from a bare snapshot and for the pictures). Writes are
atomic; reads never execute code from the files and fail with errors naming the file.

    v1 (2019): <work_dir>/TRxx_<expr_code>.ini, vposer_smpl.py, snapshots/TRxx_Eyyy.pt
    v2 (V02):  <work_dir>/<expr_code>.yaml, snapshots/<expr_code>_epoch=NN_val_loss=X.ckpt
    both:      <work_dir>/training_state.pt (model, optimizer, schedule, epoch; for resume True)
"""

from pathlib import Path

import torch

from human_body_prior.files.atomic_io import torch_save_atomic
from human_body_prior.priors.snapshots import is_v1_snapshot_name, snapshot_epoch, v2_snapshot_name

TRAINING_STATE = "training_state.pt"
_STATE_KEYS = ("model", "optimizer", "epoch", "best_val")


class ExperimentCheckpoints:
    """Checkpoint files of one experiment folder for a VPoser of ``model_version`` 1 or 2."""

    def __init__(self, work_dir, model_version: int, expr_code: str, try_num: int = 0):
        if model_version not in (1, 2):
            raise ValueError(f"model_version must be 1 or 2, got {model_version!r}")
        self.work_dir = Path(work_dir)
        self.version = model_version
        self.expr_code = expr_code
        self.try_num = int(try_num)

    # ------------------------------------------------------------------ snapshots
    def write_snapshot(self, model: torch.nn.Module, epoch: int, val_loss: float, settings: dict,
                       v2_config=None) -> str:
        """Write the folder's settings and the snapshot of ``epoch``; returns the snapshot path."""
        if self.version == 1:
            from human_body_prior.priors.experiment import write_vposer_experiment

            return write_vposer_experiment(self.work_dir, model, settings=settings, epoch=epoch,
                                           try_num=self.try_num, expr_code=self.expr_code)
        from human_body_prior.priors import vposer_v2_io

        vposer_v2_io.write_config(v2_config, self.work_dir / f"{self.expr_code}.yaml")
        name = v2_snapshot_name(self.expr_code, epoch, val_loss)
        return vposer_v2_io.write_checkpoint(model, self.work_dir / "snapshots" / name, epoch=epoch)

    def snapshot_epoch(self, path) -> int:
        """The epoch in a snapshot's name (TRxx_Eyyy.pt or ..._epoch=NN_...ckpt)."""
        epoch = snapshot_epoch(Path(path).name, self.version)
        if epoch is None:
            pattern = "TRxx_Eyyy.pt" if self.version == 1 else "<name>_epoch=NN_val_loss=X.ckpt"
            raise ValueError(f"cannot tell the epoch of the snapshot {path}: expected a name like {pattern}")
        return epoch

    def read_weights(self, path) -> dict:
        """The network state dict of a snapshot of this model version (NaN/inf weights refused)."""
        path = Path(path)
        if self.version == 1:
            from human_body_prior.priors.experiment import read_state_dict

            sd = read_state_dict(path)
        else:
            from human_body_prior.priors import vposer_v2_io

            sd = vposer_v2_io.model_state_dict(vposer_v2_io.read_checkpoint(path)["state_dict"])
        from human_body_prior.priors.vposer_v2_io import check_finite

        check_finite(sd, f"snapshot {path}")
        return sd

    def load_weights(self, model: torch.nn.Module, path) -> None:
        from human_body_prior.priors.experiment import load_state_dict_checked

        load_state_dict_checked(model, self.read_weights(path), source=f"snapshot {path}")

    # ------------------------------------------------------------------ training state
    @property
    def training_state_path(self) -> Path:
        return self.work_dir / TRAINING_STATE

    def save_training_state(self, state: dict) -> None:
        torch_save_atomic(state, self.training_state_path)

    def is_training_state(self, path) -> bool:
        path = Path(path)
        return path.is_dir() or path.name == TRAINING_STATE or path.suffix not in (".pt", ".ckpt") or \
            (path.suffix == ".pt" and not is_v1_snapshot_name(path.name))

    @staticmethod
    def read_training_state(path) -> dict:
        """A training_state.pt -> its dict, with errors naming the file for unreadable or incomplete states."""
        path = Path(path)
        if path.is_dir():
            path = path / TRAINING_STATE
        if not path.is_file():
            raise FileNotFoundError(f"cannot resume: {path} not found")
        try:
            state = torch.load(str(path), map_location="cpu", weights_only=True)
        except Exception as e:
            raise ValueError(f"cannot resume from {path}: not a readable training state "
                             f"({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})") from None
        if not isinstance(state, dict):
            raise ValueError(f"cannot resume from {path}: expected a dict with {list(_STATE_KEYS)}, "
                             f"found {type(state).__name__}")
        missing = [k for k in _STATE_KEYS if k not in state]
        if missing:
            raise ValueError(f"cannot resume from {path}: the training state lacks {missing}")
        return state
