"""AMASS reading, VPoser dataset preparation (middle 80%, split by take, mirroring, thinning),
VPoserDS items, and the open-mocap split rule."""

import json

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from human_body_prior.model_types.joints import BODY_JOINT_NAMES
from human_body_prior.data.dataloader import VPoserDS
from human_body_prior.data.prepare_data import (middle_frames, mirror_body_pose, prepare_vposer_datasets,
                                                prepare_vposer_takes, read_amass_take, thin_near_duplicates)
from human_body_prior.data.prepare_open_mocap import split_takes, take_unit


def _write_take(path, n, rng, width=165, marker=None):
    poses = rng.normal(size=(n, width)) * 0.3
    if marker is not None:  # tag every frame with its take and frame number
        poses[:, 3] = marker
        poses[:, 4] = np.arange(n)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, poses=poses, trans=rng.normal(size=(n, 3)), betas=np.zeros(16), gender=np.array("female"),
             mocap_framerate=np.array(60.0))
    return poses


@pytest.fixture()
def amass_dir(tmp_path):
    rng = np.random.default_rng(0)
    root = tmp_path / "amass"
    takes = {}
    marker = 0
    for ds, n_takes in (("SetA", 3), ("SetB", 2), ("SetC", 1)):
        for k in range(n_takes):
            marker += 1
            p = root / ds / f"subj{k}" / f"take{k}_poses.npz"
            takes[marker] = (p, _write_take(p, 50 + 10 * k, rng, width=156 if ds == "SetB" else 165, marker=marker))
    np.savez(root / "SetA" / "subj0" / "shape.npz", betas=np.zeros(16), gender=np.array("female"))
    return root, takes


def test_read_amass_take_smplh_and_smplx(amass_dir):
    root, takes = amass_dir
    for p, poses in takes.values():
        t = read_amass_take(p)
        assert np.array_equal(t["pose_body"], poses[:, 3:66])
        assert np.array_equal(t["root_orient"], poses[:, :3])
        assert t["fps"] == 60.0 and t["gender"] == "female"
    with pytest.raises(ValueError, match="shape.npz"):
        read_amass_take(root / "SetA" / "subj0" / "shape.npz")


def test_middle_frames():
    assert list(middle_frames(10)) == list(range(1, 9))
    assert list(middle_frames(100)) == list(range(10, 90))
    assert len(middle_frames(3)) == 3


def test_prepare_splits_by_take_with_middle_frames(amass_dir, tmp_path):
    root, takes = amass_dir
    out = tmp_path / "vposer"
    stats = prepare_vposer_datasets({"train": ["SetA"], "vald": ["SetB"], "test": "SetC"}, root, out, progress=False)
    seen = {}
    for split in ("train", "vald", "test"):
        pose = torch.load(out / split / "pose.pt", weights_only=True)
        assert pose.shape[1] == 63 and pose.dtype == torch.float32
        assert stats[split]["frames"] == pose.shape[0]
        markers, frames = pose[:, 0].numpy(), pose[:, 1].numpy()
        for m in np.unique(markers):
            assert m not in seen, "a take landed in two splits"
            seen[m] = split
            n = takes[int(m)][1].shape[0]
            got = np.sort(frames[markers == m]).astype(int)
            assert list(got) == list(middle_frames(n))  # exactly the middle 80%, each once
        takes_json = json.loads((out / split / "takes.json").read_text())
        ti = torch.load(out / split / "take_index.pt", weights_only=True)
        assert ti.shape[0] == pose.shape[0] and int(ti.max()) == len(takes_json) - 1
    assert set(seen) == set(takes)


def test_same_take_in_two_splits_is_an_error(amass_dir, tmp_path):
    root, takes = amass_dir
    p = takes[1][0]
    with pytest.raises(ValueError, match="both split"):
        prepare_vposer_takes({"train": [p], "test": [p]}, tmp_path / "x", progress=False)
    with pytest.raises(ValueError, match="unknown split"):
        prepare_vposer_takes({"training": [p]}, tmp_path / "x", progress=False)
    with pytest.raises(FileNotFoundError, match="NoSuchSet"):
        prepare_vposer_datasets({"train": ["NoSuchSet"]}, root, tmp_path / "x", progress=False)


def _mirror_reference(pose63):
    """Mirror by reflecting rotation matrices: R -> S R S with S = diag(-1, 1, 1), sides swapped."""
    names = BODY_JOINT_NAMES[1:]
    S = np.diag([-1.0, 1.0, 1.0])
    R = Rotation.from_rotvec(pose63.reshape(-1, 3)).as_matrix().reshape(-1, 21, 3, 3)
    M = S @ R @ S
    perm = [names.index(n.replace("left", "@").replace("right", "left").replace("@", "right")) for n in names]
    return M[:, perm]


def test_mirror_is_reflection_and_involution():
    rng = np.random.default_rng(1)
    p = rng.normal(size=(7, 63))
    m = mirror_body_pose(p)
    got = Rotation.from_rotvec(m.reshape(-1, 3)).as_matrix().reshape(-1, 21, 3, 3)
    assert np.allclose(got, _mirror_reference(p), atol=1e-9)
    assert np.allclose(mirror_body_pose(m), p)


def test_mirror_augmentation_only_in_train(amass_dir, tmp_path):
    root, _ = amass_dir
    out = tmp_path / "vp"
    plain = prepare_vposer_datasets({"train": ["SetA"], "vald": ["SetB"]}, root, tmp_path / "plain", progress=False)
    mirrored = prepare_vposer_datasets({"train": ["SetA"], "vald": ["SetB"]}, root, out, mirror=True, progress=False)
    assert mirrored["train"]["frames"] == 2 * plain["train"]["frames"]
    assert mirrored["vald"]["frames"] == plain["vald"]["frames"]
    pose = torch.load(out / "train" / "pose.pt", weights_only=True).numpy().astype(np.float64)
    ti = torch.load(out / "train" / "take_index.pt", weights_only=True).numpy()
    base = torch.load(tmp_path / "plain" / "train" / "pose.pt", weights_only=True).numpy().astype(np.float64)
    ti_base = torch.load(tmp_path / "plain" / "train" / "take_index.pt", weights_only=True).numpy()
    for k in np.unique(ti_base):
        rows, plain_rows = pose[ti == k], base[ti_base == k]
        n = len(plain_rows)
        assert len(rows) == 2 * n
        assert np.array_equal(rows[:n], plain_rows)
        assert np.allclose(rows[n:], mirror_body_pose(plain_rows), atol=1e-6)


def test_thin_near_duplicates():
    p = np.zeros((6, 63))
    p[2, 0] = np.deg2rad(2)   # small move: dropped at 5 deg
    p[3, 0] = np.deg2rad(10)  # big move from the last kept frame (0): kept
    p[4, 0] = np.deg2rad(12)  # 2 deg from frame 3: dropped
    p[5, 5] = np.deg2rad(30)  # another joint moved: kept
    assert list(thin_near_duplicates(p, 5.0)) == [0, 3, 5]
    assert list(thin_near_duplicates(p, 0.0)) == list(range(6))


def test_vposer_ds_items(amass_dir, tmp_path):
    root, _ = amass_dir
    prepare_vposer_datasets({"train": ["SetA"]}, root, tmp_path / "d", progress=False)
    ds = VPoserDS(tmp_path / "d" / "train")
    pose = torch.load(tmp_path / "d" / "train" / "pose.pt", weights_only=True)
    assert len(ds) == pose.shape[0]
    item = ds[5]
    assert item["pose_aa"].shape == (1, 21, 3) and item["pose_matrot"].shape == (1, 21, 9)
    ref = Rotation.from_rotvec(pose[5].numpy().reshape(21, 3).astype(np.float64)).as_matrix().reshape(1, 21, 9)
    assert np.allclose(item["pose_matrot"].numpy(), ref, atol=1e-5)
    assert item["root_orient"].shape == (3,) and item["trans"].shape == (3,)
    batch = next(iter(torch.utils.data.DataLoader(ds, batch_size=4)))
    assert batch["pose_aa"].shape == (4, 1, 21, 3)
    with pytest.raises(FileNotFoundError, match="pose.pt"):
        VPoserDS(tmp_path / "nothing")


def test_open_mocap_split_rule():
    takes = ([f"cmu_daz/salsa/{k:02d}.bvh" for k in list(range(1, 8)) + list(range(9, 15))]
             + [f"cmu_daz/salsa/{k + 15:02d}.bvh" for k in list(range(1, 8)) + list(range(9, 15))]
             + [f"cmu_daz/martial/{k:02d}.bvh" for k in range(3, 10)]
             + [f"cmu_iclone/subjects/005/005_{k:02d}.bvh" for k in range(1, 18)]
             + [f"reactidle/acted/{k:03d}_acted.bvh" for k in (1, 2, 3, 4, 7)]
             + [f"reactidle/genuine/{k:03d}_genuine.bvh" for k in (0, 2, 3, 7)])
    s = split_takes(takes)
    all_takes = s["train"] + s["vald"] + s["test"]
    assert sorted(all_takes) == sorted(takes) and len(set(all_takes)) == len(takes)  # each take exactly once
    where = {t: k for k, v in s.items() for t in v}
    for k in list(range(1, 8)) + list(range(9, 15)):  # salsa partners together
        assert where[f"cmu_daz/salsa/{k:02d}.bvh"] == where[f"cmu_daz/salsa/{k + 15:02d}.bvh"]
    for k in (2, 3, 7):  # a ReActIdle participant's acted and genuine takes together
        assert where[f"reactidle/acted/{k:03d}_acted.bvh"] == where[f"reactidle/genuine/{k:03d}_genuine.bvh"]
    for prefix in ("cmu_daz/salsa", "cmu_daz/martial", "cmu_iclone", "reactidle"):  # every set in every split
        for split in ("train", "vald", "test"):
            assert any(t.startswith(prefix) for t in s[split]), (prefix, split)
    assert split_takes(takes) == s  # deterministic
    assert take_unit("cmu_daz/salsa/16.bvh") == take_unit("cmu_daz/salsa/01.bvh")
