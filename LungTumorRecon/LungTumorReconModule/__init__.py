"""Helpers of the Slicer module's panel that need desktop Slicer (not the library's)."""
