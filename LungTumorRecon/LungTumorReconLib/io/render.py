"""Pictures of a result: an axial slice with the segments outlined, and an offscreen 3D view."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw
from scipy import ndimage as ndi

from LungTumorReconLib.coordinates import VolumeGeometry

OUTLINE_COLORS = {
    "right lung": (90, 170, 255),
    "left lung": (120, 230, 120),
    "tumor": (255, 70, 50),
}


def _lps_oriented(array: np.ndarray, geometry: VolumeGeometry) -> np.ndarray:
    """Flip/transpose a (k, j, i) array so that i→L, j→P, k→S (radiological axial display)."""
    d = geometry.direction_matrix
    axes = [int(np.argmax(np.abs(d[:, c]))) for c in range(3)]  # LPS axis of i, j, k
    # array axis for LPS axis a: i is axis 2, j axis 1, k axis 0
    order = [2 - axes.index(a) for a in (2, 1, 0)]
    out = np.transpose(array, order)
    for a, arr_axis in zip((2, 1, 0), range(3)):
        c = axes.index(a)
        if d[a, c] < 0:
            out = np.flip(out, axis=arr_axis)
    return out


def render_axial_png(
    hu: np.ndarray,
    geometry: VolumeGeometry,
    segments: dict[str, np.ndarray],
    path: str | Path,
    focus: str = "tumor",
    window: tuple[float, float] = (-600.0, 1500.0),
) -> int:
    """Write the axial slice through the centre of ``focus`` (or the middle slice) with outlines.

    Radiological convention: patient right on the image's left, anterior at the top.
    Returns the slice index (k in LPS-sorted order) shown.
    """
    ct = _lps_oriented(hu, geometry)
    masks = {name: _lps_oriented(m, geometry) for name, m in segments.items()}
    if focus in masks and masks[focus].any():
        k = int(round(ndi.center_of_mass(masks[focus].any(axis=(1, 2)))[0]))
    else:
        k = ct.shape[0] // 2
    level, width = window
    gray = np.clip((ct[k].astype(np.float32) - (level - width / 2)) / width, 0, 1)
    rgb = np.repeat((gray * 255).astype(np.uint8)[..., None], 3, axis=2)
    for name, mask in masks.items():
        sl = mask[k]
        edge = sl & ~ndi.binary_erosion(sl)
        edge = ndi.binary_dilation(edge, iterations=1 if max(sl.shape) <= 256 else 2) if edge.any() else edge
        rgb[edge] = OUTLINE_COLORS.get(name, (255, 255, 0))
    image = Image.fromarray(rgb)
    # square pixels: scale the row axis by the in-plane spacing ratio
    sy, sx = _lps_spacing(geometry)[1], _lps_spacing(geometry)[0]
    if abs(sy - sx) > 1e-3:
        image = image.resize((image.width, int(round(image.height * sy / sx))), Image.NEAREST)
    if image.width < 512:
        scale = 512 / image.width
        image = image.resize((512, int(round(image.height * scale))), Image.NEAREST)
    draw = ImageDraw.Draw(image)
    y = 4
    for name in masks:
        draw.text((6, y), name, fill=OUTLINE_COLORS.get(name, (255, 255, 0)))
        y += 12
    draw.text((6, image.height - 14), f"axial slice {k + 1}/{ct.shape[0]}  R | L", fill=(255, 255, 255))
    image.save(path)
    return k


def _lps_spacing(geometry: VolumeGeometry) -> tuple[float, float, float]:
    d = geometry.direction_matrix
    axes = [int(np.argmax(np.abs(d[:, c]))) for c in range(3)]
    return tuple(geometry.spacing[axes.index(a)] for a in range(3))


def prepare_offscreen_rendering() -> None:
    """Call before VTK opens an OpenGL context in a process that may also use PyTorch.

    Mesa's software renderer (llvmpipe) loads the system's libLLVM; importing triton (which
    torch and MONAI pull in) after that crashes the process with a segfault, while the other
    order works. So triton, when installed, is loaded first (0.2 s).
    """
    if not os.environ.get("DISPLAY"):
        os.environ.setdefault("VTK_DEFAULT_OPENGL_WINDOW", "vtkEGLRenderWindow")
    import importlib.util

    if importlib.util.find_spec("triton") is not None:
        import triton  # noqa: F401


def render_3d_png(
    surfaces: list[tuple[str, object, tuple[float, float, float], float]],
    path: str | Path,
    size: tuple[int, int] = (800, 600),
) -> None:
    """Render (name, vtkPolyData in LPS, colour, opacity) surfaces offscreen, viewed from the front."""
    prepare_offscreen_rendering()
    import vtkmodules.vtkRenderingOpenGL2  # noqa: F401  (registers the OpenGL back end)
    from vtkmodules.vtkIOImage import vtkPNGWriter
    from vtkmodules.vtkRenderingCore import (
        vtkActor,
        vtkPolyDataMapper,
        vtkRenderer,
        vtkRenderWindow,
        vtkWindowToImageFilter,
    )

    window = vtkRenderWindow()
    window.SetOffScreenRendering(1)
    window.SetSize(*size)
    renderer = vtkRenderer()
    renderer.SetBackground(0.10, 0.10, 0.14)
    renderer.SetBackground2(0.35, 0.37, 0.45)
    renderer.GradientBackgroundOn()
    window.AddRenderer(renderer)
    for _name, polydata, color, opacity in surfaces:
        if polydata is None or polydata.GetNumberOfPoints() == 0:
            continue
        mapper = vtkPolyDataMapper()
        mapper.SetInputData(polydata)
        mapper.ScalarVisibilityOff()
        actor = vtkActor()
        actor.SetMapper(mapper)
        actor.GetProperty().SetColor(*color)
        actor.GetProperty().SetOpacity(opacity)
        renderer.AddActor(actor)
    camera = renderer.GetActiveCamera()
    # anterior view in LPS: look from −y (anterior) toward +y, superior up
    camera.SetPosition(0, -1, 0)
    camera.SetFocalPoint(0, 0, 0)
    camera.SetViewUp(0, 0, 1)
    renderer.ResetCamera()
    camera.Azimuth(0)
    window.Render()
    grab = vtkWindowToImageFilter()
    grab.SetInput(window)
    grab.ReadFrontBufferOff()
    grab.Update()
    writer = vtkPNGWriter()
    writer.SetFileName(str(path))
    writer.SetInputConnection(grab.GetOutputPort())
    writer.Write()
    window.Finalize()
