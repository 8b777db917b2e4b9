"""Small rigid transformations of trimesh meshes and vertex arrays (metres, degrees)."""

import numpy as np


def rotation_about_axis(angle_deg, axis=(0.0, 1.0, 0.0)):
    """(3, 3) rotation by ``angle_deg`` degrees about ``axis`` (right-handed, Rodrigues)."""
    axis = np.asarray(axis, dtype=np.float64).reshape(3)
    norm = np.linalg.norm(axis)
    if norm == 0:
        raise ValueError("rotation axis must be non-zero")
    x, y, z = axis / norm
    theta = np.radians(float(angle_deg))
    c, s = np.cos(theta), np.sin(theta)
    K = np.array([[0.0, -z, y], [z, 0.0, -x], [-y, x, 0.0]])
    return np.eye(3) + s * K + (1.0 - c) * (K @ K)


def rigid_transform(rotation=None, translation=None):
    """(4, 4) homogeneous matrix from a (3, 3) rotation and a (3,) translation."""
    T = np.eye(4)
    if rotation is not None:
        T[:3, :3] = np.asarray(rotation, dtype=np.float64).reshape(3, 3)
    if translation is not None:
        T[:3, 3] = np.asarray(translation, dtype=np.float64).reshape(3)
    return T


def rotate_vertices(vertices, angle_deg, axis=(0.0, 1.0, 0.0), center=None):
    """Rotate (..., V, 3) vertices about ``axis`` through ``center`` (default: origin)."""
    vertices = np.asarray(vertices)
    if vertices.shape[-1] != 3:
        raise ValueError(f"vertices must have shape (..., V, 3), got {vertices.shape}")
    R = rotation_about_axis(angle_deg, axis)
    c = np.zeros(3) if center is None else np.asarray(center, dtype=np.float64).reshape(3)
    return ((vertices - c) @ R.T + c).astype(vertices.dtype, copy=False)


def rotate_mesh(mesh, angle_deg, axis=(0.0, 1.0, 0.0), center=None):
    """Rotate a trimesh.Trimesh in place about ``axis`` through ``center``; returns the mesh."""
    c = np.zeros(3) if center is None else np.asarray(center, dtype=np.float64).reshape(3)
    T = rigid_transform(translation=c) @ rigid_transform(rotation_about_axis(angle_deg, axis)) \
        @ rigid_transform(translation=-c)
    mesh.apply_transform(T)
    return mesh


def translate_mesh(mesh, offset):
    """Translate a trimesh.Trimesh in place by ``offset`` (3,); returns the mesh."""
    mesh.apply_translation(np.asarray(offset, dtype=np.float64).reshape(3))
    return mesh


def transform_meshes(meshes, transform):
    """Apply one (4, 4) transform in place to every mesh in ``meshes``; returns the list."""
    transform = np.asarray(transform, dtype=np.float64)
    if transform.shape != (4, 4):
        raise ValueError(f"transform must have shape (4, 4), got {transform.shape}")
    for mesh in meshes:
        mesh.apply_transform(transform)
    return meshes
