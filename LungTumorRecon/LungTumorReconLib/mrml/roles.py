"""The nodes LungTumorRecon makes in a scene: their roles, default names and colours.

A node the project makes carries its role in the attribute :data:`ROLE_ATTRIBUTE` and a
reference (:data:`SOURCE_REFERENCE`) to the CT it was computed from. The project finds its
own nodes by those two, never by name alone, so a user's node that happens to share a name
is never replaced or removed.
"""

from __future__ import annotations

from enum import Enum

from LungTumorReconLib.io.seeds import LEFT_LUNG, RIGHT_LUNG, TUMOR

ROLE_ATTRIBUTE = "LungTumorRecon.Role"
SOURCE_REFERENCE = "LungTumorReconSource"  # MRML reference role: result node -> its CT node
# On a CT node read from DICOM: the folder (or file) it was read from and its series, so that a
# DICOM SEG and SR can reference its instances. Desktop Slicer's DICOM browser sets
# "DICOM.instanceUIDs" instead; the module resolves those through its DICOM database.
DICOM_SOURCE_ATTRIBUTE = "LungTumorRecon.DicomSource"
DICOM_SERIES_ATTRIBUTE = "LungTumorRecon.SeriesInstanceUID"


class Role(str, Enum):
    """What a node is to the project; its value is stored in the node's attribute."""

    SEGMENTATION = "segmentation"
    SEEDS = "seeds"
    TUMOR_MODEL = "tumor model"
    HETEROGENEITY = "heterogeneity map"
    VOLUMES_TABLE = "segment volumes table"
    TUMORS_TABLE = "tumour measurements table"
    RECIST_AXIS = "RECIST axis"  # a tumour's longest axial diameter or short axis, as a line
    # a follow-up folder loaded into the scene (mrml/followup_scene.py)
    FOLLOWUP_SEGMENTATION = "follow-up segmentation"
    FOLLOWUP_TRANSFORM = "follow-up registration"
    FOLLOWUP_TABLE = "follow-up growth table"


NODE_NAMES = {  # the name a new node gets; the user may rename it
    Role.SEGMENTATION: "Segmentation",
    Role.SEEDS: "Seeds",
    Role.TUMOR_MODEL: "tumor model",
    Role.HETEROGENEITY: "tumor heterogeneity",
    Role.VOLUMES_TABLE: "Segment volumes",
    Role.TUMORS_TABLE: "Tumor measurements",
    Role.RECIST_AXIS: "{tumor} {axis}",  # e.g. "tumor 1 longest diameter"
    Role.FOLLOWUP_SEGMENTATION: "follow-up segmentation",
    Role.FOLLOWUP_TRANSFORM: "follow-up to baseline (registration)",
    Role.FOLLOWUP_TABLE: "Follow-up growth (not for clinical use)",
}

# Segment colours (RGB 0-1), fixed so that every front end shows the same thing.
SEGMENT_COLORS = {
    RIGHT_LUNG: (0.50, 0.68, 0.85),
    LEFT_LUNG: (0.55, 0.80, 0.55),
    TUMOR: (0.90, 0.30, 0.25),
}
OTHER_SEGMENT_COLOR = (0.8, 0.8, 0.2)
MODEL_COLOR = (0.95, 0.75, 0.20)
# The RECIST axes' colour per tumour (tumour 1, 2, ...; repeated after the last)
RECIST_AXIS_COLORS = ((1.0, 1.0, 0.0), (0.0, 1.0, 1.0), (1.0, 0.0, 1.0), (1.0, 0.55, 0.0), (0.6, 1.0, 0.2))
RECIST_AXES = (("longest_axis_lps", "longest diameter"), ("short_axis_lps", "short axis"))  # field, name
LUNG_WINDOW = (1500.0, -600.0)  # window, level (HU) a CT is shown with
HETEROGENEITY_COLORMAP = "vtkMRMLColorTableNodeRainbow"
HETEROGENEITY_OPACITY = 0.5  # as a foreground layer over the CT
VOLUMES_COLUMNS = ["segment", "volume_ml", "voxels"]
