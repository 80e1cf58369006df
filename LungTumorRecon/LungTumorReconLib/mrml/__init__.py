"""The one layer that talks to Slicer's MRML (desktop Slicer or the slicer-core wheel)."""
