"""LungTumorRecon library: lung and lung-tumour segmentation and 3D tumour reconstruction.

Everything here runs without Slicer, except ``scene.py``, which is the one module that
talks to Slicer's MRML (desktop Slicer or the ``slicer-core`` wheel).

Not for clinical use.
"""

__version__ = "0.1.0"
