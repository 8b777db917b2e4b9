"""Bad-input suite, VPoser v1 experiment folders: a snapshot with non-finite weights is refused with
the file named (it used to load and decode NaN poses)."""

import pytest
import torch

from human_body_prior.priors.experiment import load_vposer, write_vposer_experiment
from human_body_prior.priors.vposer import VPoser


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_weights_are_refused(tmp_path, value):
    torch.manual_seed(0)
    model = VPoser(num_neurons=32, latentD=8, data_shape=[1, 21, 3])
    snapshot = write_vposer_experiment(tmp_path / "expr", model, epoch=3)
    model, _ = load_vposer(tmp_path / "expr", verbose=False)  # the clean folder loads
    sd = torch.load(snapshot, weights_only=True)
    name = sorted(k for k, v in sd.items() if v.is_floating_point())[2]
    sd[name].view(-1)[5] = value
    torch.save(sd, snapshot)
    with pytest.raises(ValueError, match=rf"TR00_E003\.pt.*non-finite.*{name.replace('.', '[.]')}"):
        load_vposer(tmp_path / "expr", verbose=False)
