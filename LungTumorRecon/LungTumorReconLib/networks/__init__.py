"""The seed papers' networks, one per file (MONAI networks/nets style)."""
