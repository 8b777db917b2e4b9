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


# ---------------------------------------------------------------------------------------------- issue 24
def _folder(tmp_path, use_cont_repr=True):
    torch.manual_seed(0)
    model = VPoser(num_neurons=32, latentD=8, data_shape=[1, 21, 3], use_cont_repr=use_cont_repr)
    snapshot = write_vposer_experiment(tmp_path / "expr", model, epoch=3)
    ini = next((tmp_path / "expr").glob("*.ini"))
    return snapshot, ini


def _set(ini, key, text):
    lines = [ln for ln in ini.read_text().splitlines() if not ln.startswith(f"{key} :")]
    ini.write_text("\n".join(lines + [f"{key} : {text}"]) + "\n")


@pytest.mark.parametrize("key,text,expected", [
    ("latentD", "32.7", "an integer"),             # used to become 32
    ("use_cont_repr", "'False'", "a boolean"),     # used to become True (a non-empty string)
    ("num_neurons", "abc", "an integer"),          # used to fail in int() with no key, no file
    ("num_neurons", "lambda x: x", "an integer"),
    ("latentD", "thirty-two", "an integer"),
    ("data_shape", "[1, twenty-one, 3]", "a list of integers"),
    ("data_shape", "21", "a list of integers"),
])
def test_v1_ini_values_are_parsed_strictly(tmp_path, key, text, expected):
    _, ini = _folder(tmp_path)
    _set(ini, key, text)
    with pytest.raises(ValueError, match=rf"^setting '{key}' in .*{ini.name}: expected {expected}"):
        load_vposer(tmp_path / "expr", verbose=False)


def test_v1_ini_lowercase_false_is_false(tmp_path):
    """`use_cont_repr : false` became True in the 2019 loader (configer keeps it as the text 'false')."""
    _, ini = _folder(tmp_path, use_cont_repr=False)
    _set(ini, "use_cont_repr", "false")
    model, ps = load_vposer(tmp_path / "expr", verbose=False)
    assert ps.use_cont_repr is False and model.use_cont_repr is False


def test_v1_ini_that_is_not_utf8_names_the_file(tmp_path):
    _, ini = _folder(tmp_path)
    ini.write_bytes(ini.read_bytes().replace(b"expr_code : ", b"expr_code : caf\xe9 "))
    with pytest.raises(ValueError, match=rf"settings file .*{ini.name} is not UTF-8"):
        load_vposer(tmp_path / "expr", verbose=False)


def test_snapshot_with_a_flipped_byte_in_tensor_data_is_refused(tmp_path):
    """torch.load does not check the zip's CRCs: the damaged snapshot loaded and decoded 1e-3 off."""
    snapshot, _ = _folder(tmp_path)
    sd = torch.load(snapshot, weights_only=True)
    raw = bytearray(open(snapshot, "rb").read())
    at = raw.find(sd["bodyprior_dec_fc1.weight"].numpy().tobytes())
    assert at > 0
    raw[at + 101] ^= 0x01  # one low mantissa bit of one weight
    open(snapshot, "wb").write(raw)
    with pytest.raises(ValueError, match=r"snapshot .*TR00_E003\.pt is damaged: member .* does not match its stored CRC"):
        load_vposer(tmp_path / "expr", verbose=False)


def test_2019_user_class_gets_what_2019_passed(tmp_path):
    """A 2019 user class takes (num_neurons, latentD, data_shape); load_vposer passed use_cont_repr too."""
    _folder(tmp_path)

    class UserVPoser(VPoser):
        def __init__(self, num_neurons, latentD, data_shape):
            super().__init__(num_neurons=num_neurons, latentD=latentD, data_shape=data_shape)

    model, _ = load_vposer(tmp_path / "expr", vp_model=UserVPoser, verbose=False)
    assert isinstance(model, UserVPoser) and model.latentD == 8
