"""The LungTumorRecon web app: the module's panel on Slicer's scene in a browser (trame-slicer)."""

import os

# Views render offscreen through EGL (Mesa's software driver from Debian): no X server needed.
# Set before VTK is first imported by the app module.
os.environ.setdefault("VTK_DEFAULT_OPENGL_WINDOW", "vtkEGLRenderWindow")
