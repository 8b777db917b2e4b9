"""Pinhole camera for fitting bodies to 2D keypoints.

Convention (OpenCV): camera frame x right, y down, z forward (into the scene); pixel coordinates
u = fx * x / z + cx, v = fy * y / z + cy. A world point X goes to the camera frame as R X + t.
"""

import torch


def _per_batch(value, width_shape, name, dtype, device):
    """value shaped width_shape (shared) or (B, *width_shape) -> tensor (B or 1, *width_shape)."""
    t = torch.as_tensor(value, dtype=dtype, device=device)
    if tuple(t.shape) == tuple(width_shape):
        return t.unsqueeze(0)
    if t.dim() == len(width_shape) + 1 and tuple(t.shape[1:]) == tuple(width_shape):
        return t
    shape = ", ".join(str(s) for s in width_shape)
    raise ValueError(f"camera {name} must have shape ({shape}) or (B, {shape}), got {tuple(t.shape)}")


class PinholeCamera:
    """A pinhole camera, shared by a batch or one per frame.

    focal_length: scalar, (2,) (fx, fy) or (B, 2), in pixels. principal_point: (2,) or (B, 2) in
    pixels (cx, cy). rotation: (3, 3) or (B, 3, 3) world-to-camera rotation (default identity).
    translation: (3,) or (B, 3) world-to-camera translation in metres (default zero).
    """

    def __init__(self, focal_length, principal_point, rotation=None, translation=None,
                 dtype=torch.float32, device=None):
        f = torch.as_tensor(focal_length, dtype=dtype, device=device)
        if f.dim() == 0:
            f = f.expand(2)
        elif f.dim() == 1 and f.shape[0] == 1:
            f = f.expand(2)
        self.focal_length = _per_batch(f, (2,), "focal_length", dtype, device)
        if not torch.all(self.focal_length > 0):
            raise ValueError("camera focal_length must be positive")
        self.principal_point = _per_batch(principal_point, (2,), "principal_point", dtype, device)
        eye = torch.eye(3, dtype=dtype, device=device)
        self.rotation = _per_batch(eye if rotation is None else rotation, (3, 3), "rotation", dtype, device)
        zero = torch.zeros(3, dtype=dtype, device=device)
        self.translation = _per_batch(zero if translation is None else translation, (3,), "translation", dtype, device)
        sizes = {t.shape[0] for t in self._tensors()} - {1}
        if len(sizes) > 1:
            raise ValueError(f"camera parameters have different batch sizes {sorted(sizes)}")

    def _tensors(self):
        return (self.focal_length, self.principal_point, self.rotation, self.translation)

    @property
    def batch_size(self) -> int:
        return max(t.shape[0] for t in self._tensors())

    def to(self, device=None, dtype=None) -> "PinholeCamera":
        """A copy on another device / dtype."""
        cam = PinholeCamera.__new__(PinholeCamera)
        cam.focal_length, cam.principal_point, cam.rotation, cam.translation = (
            t.to(device=device, dtype=dtype) for t in self._tensors())
        return cam

    def select(self, frames: torch.Tensor) -> "PinholeCamera":
        """The cameras of the frames ``frames`` (n,) long: per-frame parameters indexed, shared ones kept."""
        cam = PinholeCamera.__new__(PinholeCamera)
        cam.focal_length, cam.principal_point, cam.rotation, cam.translation = (
            t[frames] if t.shape[0] > 1 else t for t in self._tensors())
        return cam

    def world_to_camera(self, points: torch.Tensor) -> torch.Tensor:
        """points (B, N, 3) world, metres -> (B, N, 3) camera frame."""
        return torch.einsum("bij,bnj->bni", self.rotation.expand(points.shape[0], 3, 3), points) \
            + self.translation.unsqueeze(1)

    def project(self, points: torch.Tensor, min_depth: float = 1e-4) -> torch.Tensor:
        """points (B, N, 3) world, metres -> pixels (B, N, 2). Depths below min_depth are clamped
        (points behind the camera have no meaningful projection)."""
        if points.dim() != 3 or points.shape[-1] != 3:
            raise ValueError(f"PinholeCamera.project expects points (B, N, 3), got {tuple(points.shape)}")
        pc = self.world_to_camera(points)
        z = pc[..., 2:].clamp(min=min_depth)
        return pc[..., :2] / z * self.focal_length.unsqueeze(1) + self.principal_point.unsqueeze(1)

    def unproject(self, pixels: torch.Tensor, depth: torch.Tensor) -> torch.Tensor:
        """pixels (B, N, 2) and depth (B, N) along the camera z axis -> world points (B, N, 3)."""
        xy = (pixels - self.principal_point.unsqueeze(1)) / self.focal_length.unsqueeze(1) * depth.unsqueeze(-1)
        pc = torch.cat([xy, depth.unsqueeze(-1)], dim=-1) - self.translation.unsqueeze(1)
        return torch.einsum("bji,bnj->bni", self.rotation.expand(pixels.shape[0], 3, 3), pc)
