"""The kinematic tree and the one forward kinematics, shared by skinning, BVH motion, the open-model
builder and joint fitting.

Shapes: B batch, J joints. Rotations are (B, J, 3, 3) matrices; lengths in the caller's units.
"""

import torch


class KinematicTree:
    """A joint tree, immutable, grouped by depth so that each level of the chain is one batched product.

    parents: sequence of J ints, parents[0] == -1 (the one root) and parents[j] < j.
    """

    __slots__ = ("parents", "parent_index", "order", "inverse_order", "sorted_parents", "level_slices",
                 "level_parents")

    def __init__(self, parents):
        parents = tuple(int(p) for p in parents)
        if not parents or parents[0] != -1 or any(not (0 <= p < j) for j, p in enumerate(parents) if j):
            raise ValueError(f"parents must start with -1 and list each parent before its child, got {list(parents)}")
        depth = [0] * len(parents)
        for j in range(1, len(parents)):
            depth[j] = depth[parents[j]] + 1
        # The joints sorted by depth (stable), so that each level is a contiguous slice; every parent of
        # level d sits in level d - 1, at `level_parents[d - 1]` within that level's slice.
        order = sorted(range(len(parents)), key=lambda j: depth[j])
        position = {j: i for i, j in enumerate(order)}
        level_slices, level_parents = [(0, 1)], []
        for d in range(1, max(depth) + 1):
            start = level_slices[-1][1]
            members = [j for j in order if depth[j] == d]
            prev_start = level_slices[-1][0]
            level_parents.append(torch.tensor([position[parents[j]] - prev_start for j in members]))
            level_slices.append((start, start + len(members)))
        fields = dict(parents=parents, parent_index=torch.tensor((0,) + parents[1:]), order=torch.tensor(order),
                      inverse_order=torch.tensor([position[j] for j in range(len(parents))]),
                      sorted_parents=torch.tensor([position[parents[j]] if j else 0 for j in order]),
                      level_slices=tuple(level_slices), level_parents=tuple(level_parents))
        for name, value in fields.items():
            object.__setattr__(self, name, value)

    def __setattr__(self, name, value):
        raise AttributeError("KinematicTree is immutable")

    def __len__(self):
        return len(self.parents)

    def __reduce__(self):  # pickle / deepcopy rebuild it from the parents
        return KinematicTree, (list(self.parents),)

    def __repr__(self):
        return f"KinematicTree({list(self.parents)})"

    def __eq__(self, other):
        return isinstance(other, KinematicTree) and self.parents == other.parents

    def __hash__(self):
        return hash(self.parents)

    def select(self, joints) -> "KinematicTree":
        """The tree of a subset of joints (e.g. ``range(22)``: the SMPL-X body without hands and face),
        numbered in the given increasing order. Each joint's parent must be selected too (the first
        joint is the root)."""
        joints = [int(j) for j in joints]
        if not joints or joints[0] != 0 or any(b <= a for a, b in zip(joints, joints[1:])) or joints[-1] >= len(self):
            raise ValueError(f"joints must be increasing indices of this tree starting at the root 0, got {joints}")
        index = {j: i for i, j in enumerate(joints)}
        missing = sorted({self.parents[j] for j in joints[1:]} - set(index))
        if missing:
            raise ValueError(f"joints {joints} leave out the parents {missing} of some of them")
        return KinematicTree([-1] + [index[self.parents[j]] for j in joints[1:]])


class MovingJoints:
    """The joints of a tree whose local rotations may differ from the identity, and what the others hang from.

    moving: increasing joint indices, closed under parents (with the root). A joint that is not moving
    keeps its rest offset to its nearest moving ancestor, its *anchor*: it turns and moves rigidly with
    it. index (M,) the moving joints; tree the KinematicTree of them alone (``KinematicTree.select``);
    anchor (J,) for every joint the position, among the moving joints, of itself or its anchor.
    """

    __slots__ = ("index", "tree", "anchor")

    def __init__(self, tree: KinematicTree, moving):
        moving = sorted(int(j) for j in moving)
        position = {j: i for i, j in enumerate(moving)}
        anchor = []
        for j in range(len(tree)):
            a = j
            while a not in position:
                a = tree.parents[a]
            anchor.append(position[a])
        self.index, self.tree, self.anchor = torch.tensor(moving), tree.select(moving), torch.tensor(anchor)

    @classmethod
    def with_ancestors(cls, tree: KinematicTree, joints) -> "MovingJoints":
        """The given joints, the root and every ancestor of them."""
        keep = {0}
        for j in joints:
            while j > 0 and j not in keep:
                keep.add(j)
                j = tree.parents[j]
        return cls(tree, keep)


def global_transforms(local_rot: torch.Tensor, local_trans: torch.Tensor, tree: KinematicTree) -> torch.Tensor:
    """Chain local transforms down the tree.

    local_rot (B, J, 3, 3) rotation of each joint in its parent's frame; local_trans (B, J, 3) its
    position in the parent's frame (the root's: in the world). Returns (B, J, 3, 4) world transforms
    [R | t] in joint order: R the joint's world orientation, t its world position.

    Joints are processed depth-sorted, one level at a time: a level's global (3, 4) transforms are its
    parents' (from the previous level) times its local 4x4 ones, one gather and one product per level.
    """
    B, J = local_rot.shape[:2]
    order = tree.order.to(local_rot.device)
    bottom = local_rot.new_tensor([0.0, 0.0, 0.0, 1.0]).expand(B, J, 1, 4)
    local = torch.cat([torch.cat([local_rot, local_trans.unsqueeze(-1)], dim=-1), bottom], dim=-2)
    # depth-sorted, one piece per level (one split: its backward is one concatenation)
    levels = local.index_select(1, order).split([end - start for start, end in tree.level_slices], dim=1)
    chain = [levels[0][:, :, :3]]
    for level, parent in zip(levels[1:], tree.level_parents):
        chain.append(chain[-1].index_select(1, parent.to(level.device)) @ level)
    return torch.cat(chain, dim=1).index_select(1, tree.inverse_order.to(local.device))  # (B, J, 3, 4) in joint order


def forward_kinematics(rot_mats: torch.Tensor, joints: torch.Tensor, tree: KinematicTree):
    """Pose rest joints with local rotations about them.

    rot_mats (B, J, 3, 3) local rotations; joints (B, J, 3) rest joint locations.
    Returns posed joints (B, J, 3) and skinning transforms (B, J, 3, 4) that map rest-pose points
    to posed points for each joint (rotation, translation).
    """
    rel = joints - joints.index_select(1, tree.parent_index.to(joints.device))
    rel = torch.cat([joints[:, :1], rel[:, 1:]], dim=1)
    glob = global_transforms(rot_mats, rel, tree)
    glob_R, glob_t = glob[..., :3], glob[..., 3]
    offset = glob_t - (glob_R @ joints.unsqueeze(-1)).squeeze(-1)
    return glob_t, torch.cat([glob_R, offset.unsqueeze(-1)], dim=-1)
