"""Render trimesh meshes with pyrender, headless by default.

On Linux without a display the OpenGL platform defaults to EGL: the first viewer sets
``PYOPENGL_PLATFORM=egl`` unless it is set (importing this module changes nothing), which renders with
Mesa on a CPU-only machine when the Debian packages ``libegl1 libgl1-mesa-dri`` are installed. Set
``PYOPENGL_PLATFORM`` yourself (e.g. ``osmesa``) before the first render to choose another platform.
Each offscreen viewer owns its GL context; render from one thread at a time per viewer.

Coordinates: the camera looks down its own -z axis with +y up, as in OpenGL; the default camera
sits at (0, 0, 3) m looking at the origin, so a body model in its rest frame (+y up, facing +z)
is seen from the front.
"""

import os
import sys

import numpy as np

from human_body_prior.files.atomic_io import atomic_write

INSTALL_HINT = (
    "Headless rendering needs an OpenGL context. On Debian/Ubuntu install EGL and Mesa with "
    "`apt-get install -y libegl1 libgl1-mesa-dri` and use PYOPENGL_PLATFORM=egl (the default "
    "when there is no display), or install `libosmesa6` and set PYOPENGL_PLATFORM=osmesa."
)

_pyrender = None


class RenderingUnavailable(RuntimeError, OSError):
    """This machine cannot render (no OpenGL library or context): an OSError, so a command line reports
    it in one line; a RuntimeError, as before."""


def _delete_renderer(renderer) -> None:
    """Free an OffscreenRenderer's GL resources and context. pyrender's own ``delete`` also terminates
    the EGL display, which every other live EGL renderer of the process shares (they would stop
    working), so on EGL the context is destroyed and the display stays initialised."""
    platform = getattr(renderer, "_platform", None)
    if platform is None or getattr(platform, "_egl_display", None) is None:
        renderer.delete()
        return
    from OpenGL.EGL import (
        EGL_NO_CONTEXT,
        EGL_NO_SURFACE,
        eglDestroyContext,
        eglMakeCurrent,
    )

    platform.make_current()
    renderer._renderer.delete()
    eglMakeCurrent(platform._egl_display, EGL_NO_SURFACE, EGL_NO_SURFACE, EGL_NO_CONTEXT)
    eglDestroyContext(platform._egl_display, platform._egl_context)
    platform._egl_context = platform._egl_display = None  # so that nothing terminates the display later
    renderer._renderer = renderer._platform = None


def default_gl_platform():
    """Set ``PYOPENGL_PLATFORM=egl`` on Linux when there is no display and nothing is set yet.

    Must run before OpenGL is first imported to have an effect; returns the platform in use
    (None means PyOpenGL's own choice, e.g. GLX with a display).
    """
    if "PYOPENGL_PLATFORM" not in os.environ and sys.platform.startswith("linux"):
        if not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY"):
            if "OpenGL" not in sys.modules:
                os.environ["PYOPENGL_PLATFORM"] = "egl"
    return os.environ.get("PYOPENGL_PLATFORM")


def import_pyrender():
    """Import pyrender after choosing the GL platform; a clear error when no GL can be loaded."""
    global _pyrender
    if _pyrender is None:
        platform = default_gl_platform()
        try:
            import pyrender
        except Exception as exc:  # PyOpenGL raises ImportError/OSError/AttributeError by platform
            raise RenderingUnavailable(f"could not load OpenGL (PYOPENGL_PLATFORM={platform!r}): {exc}. "
                               + INSTALL_HINT) from exc
        _pyrender = pyrender
    return _pyrender


def look_at_pose(eye, target, up=(0.0, 1.0, 0.0)):
    """4x4 camera-to-world pose of a camera at ``eye`` looking at ``target`` (OpenGL: -z forward)."""
    eye = np.asarray(eye, dtype=np.float64)
    target = np.asarray(target, dtype=np.float64)
    back = eye - target
    norm = np.linalg.norm(back)
    if norm == 0:
        raise ValueError("camera eye and target coincide")
    back /= norm
    right = np.cross(np.asarray(up, dtype=np.float64), back)
    if np.linalg.norm(right) < 1e-9:  # looking along the up vector: pick any perpendicular
        right = np.cross(np.array([0.0, 0.0, 1.0]), back)
    right /= np.linalg.norm(right)
    true_up = np.cross(back, right)
    pose = np.eye(4)
    pose[:3, 0], pose[:3, 1], pose[:3, 2], pose[:3, 3] = right, true_up, back, eye
    return pose


# (direction the light comes from, in camera coordinates; intensity): a key light from the upper
# left of the camera and two weaker fill lights, so that surfaces facing the camera are not flat.
LIGHTS = (((-0.5, 0.8, 1.0), 2.2), ((1.0, 0.2, 0.6), 0.9), ((0.0, -0.6, 1.0), 0.5))


def _light_poses():
    """(pose, intensity) of each directional light, posed relative to the camera."""
    return [(look_at_pose(eye, (0.0, 0.0, 0.0)), intensity) for eye, intensity in LIGHTS]


class MeshViewer:
    """Offscreen (or windowed) pyrender viewer for lists of ``trimesh.Trimesh``.

    width, height: image size in pixels. use_offscreen: render to arrays (True) or open an
    interactive pyrender window (False, needs a display). bg_color: RGB(A) in [0, 1].
    """

    def __init__(self, width=1200, height=800, use_offscreen=True, bg_color=(1.0, 1.0, 1.0),
                 yfov=np.pi / 3.0):
        if int(width) <= 0 or int(height) <= 0:
            raise ValueError(f"width and height must be positive, got {width}x{height}")
        pyrender = import_pyrender()
        self.width, self.height = int(width), int(height)
        self.use_offscreen = bool(use_offscreen)
        self.yfov = float(yfov)
        self.scene = pyrender.Scene(bg_color=self._rgba(bg_color), ambient_light=(0.15, 0.15, 0.15))
        self.camera = pyrender.PerspectiveCamera(yfov=self.yfov, aspectRatio=self.width / self.height)
        self.camera_node = self.scene.add(self.camera, pose=look_at_pose((0, 0, 3.0), (0, 0, 0)),
                                          name="pc-camera")
        for pose, intensity in _light_poses():
            light = pyrender.DirectionalLight(color=np.ones(3), intensity=intensity)
            self.scene.add(light, pose=pose, parent_node=self.camera_node)
        self._groups = {}
        self.viewer = None
        self.renderer = None
        try:
            if self.use_offscreen:
                self.renderer = pyrender.OffscreenRenderer(self.width, self.height)
            else:
                self.viewer = pyrender.Viewer(self.scene, viewport_size=(self.width, self.height),
                                              use_raymond_lighting=False, run_in_thread=True)
        except Exception as exc:
            raise RenderingUnavailable(f"could not create an OpenGL context "
                               f"(PYOPENGL_PLATFORM={os.environ.get('PYOPENGL_PLATFORM')!r}): "
                               f"{exc}. " + INSTALL_HINT) from exc

    @staticmethod
    def _rgba(color):
        color = np.asarray(color, dtype=np.float64).reshape(-1)
        if color.size == 3:
            color = np.append(color, 1.0)
        if color.size != 4:
            raise ValueError(f"color must be RGB or RGBA, got {color.size} values")
        return color

    def _lock(self):
        return self.viewer.render_lock if self.viewer is not None else _NullLock()

    def set_background_color(self, color=(1.0, 1.0, 1.0)):
        """Background colour, RGB(A) in [0, 1]."""
        with self._lock():
            self.scene.bg_color = self._rgba(color)

    def update_camera_pose(self, camera_pose):
        """Set the camera-to-world pose, a (4, 4) matrix (the camera looks down its -z axis)."""
        camera_pose = np.asarray(camera_pose, dtype=np.float64)
        if camera_pose.shape != (4, 4):
            raise ValueError(f"camera_pose must have shape (4, 4), got {camera_pose.shape}")
        with self._lock():
            self.scene.set_pose(self.camera_node, pose=camera_pose)

    def set_meshes(self, meshes, group_name="static", poses=None, smooth=True):
        """Replace the meshes of ``group_name`` with ``meshes`` (list of trimesh.Trimesh).

        poses: optional list of (4, 4) model-to-world matrices, one per mesh.
        """
        pyrender = import_pyrender()
        if not isinstance(meshes, (list, tuple)):
            meshes = [meshes]
        if poses is None or len(poses) == 0:
            poses = [np.eye(4)] * len(meshes)
        if len(poses) != len(meshes):
            raise ValueError(f"got {len(meshes)} meshes but {len(poses)} poses")
        nodes = []
        for mesh, pose in zip(meshes, poses):
            if not hasattr(mesh, "vertices") or not hasattr(mesh, "faces"):
                raise TypeError(f"meshes must be trimesh.Trimesh objects, got {type(mesh).__name__}")
            nodes.append(pyrender.Node(mesh=pyrender.Mesh.from_trimesh(mesh, smooth=smooth),
                                       matrix=np.asarray(pose, dtype=np.float64),
                                       name=f"{group_name}-mesh"))
        with self._lock():
            for node in self._groups.pop(group_name, []):
                self.scene.remove_node(node)
            for node in nodes:
                self.scene.add_node(node)
            self._groups[group_name] = nodes

    def set_static_meshes(self, meshes, poses=None):
        self.set_meshes(meshes, group_name="static", poses=poses)

    def set_dynamic_meshes(self, meshes, poses=None):
        self.set_meshes(meshes, group_name="dynamic", poses=poses)

    def render(self, render_wireframe=False, RGBA=False):
        """Render the scene offscreen: (H, W, 3) uint8, or (H, W, 4) with RGBA=True."""
        if self.renderer is None:
            raise RuntimeError("render() needs an offscreen viewer (use_offscreen=True)")
        pyrender = import_pyrender()
        flags = pyrender.RenderFlags.NONE
        if RGBA:
            flags |= pyrender.RenderFlags.RGBA
        if render_wireframe:
            flags |= pyrender.RenderFlags.ALL_WIREFRAME
        self.renderer.viewport_width, self.renderer.viewport_height = self.width, self.height
        color, _ = self.renderer.render(self.scene, flags=flags)
        return np.ascontiguousarray(color)

    def save_snapshot(self, fname):
        """Write the current view to an image file (format from the extension, e.g. .png)."""
        from PIL import Image

        if self.viewer is not None:
            self.viewer.save_image(fname)
            return fname
        image = self.render(RGBA=True)
        folder = os.path.dirname(os.path.abspath(fname))
        os.makedirs(folder, exist_ok=True)
        ext = os.path.splitext(fname)[1] or ".png"
        fmt = Image.registered_extensions().get(ext.lower())
        if fmt is None:
            raise ValueError(f"unknown image extension {ext!r} for {fname}")
        if fmt in ("JPEG", "BMP"):
            image = image[..., :3]
        atomic_write(fname, lambda tmp: Image.fromarray(image).save(tmp, format=fmt))
        return fname

    def close_viewer(self):
        """Release the GL context (offscreen) or close the window."""
        if self.renderer is not None:
            renderer, self.renderer = self.renderer, None
            _delete_renderer(renderer)
        if self.viewer is not None:
            if self.viewer.is_active:
                self.viewer.close_external()
            self.viewer = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close_viewer()


class _NullLock:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False
