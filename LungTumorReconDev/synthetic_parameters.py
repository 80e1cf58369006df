"""Fixed anatomy and imaging constants of the synthetic thorax (mm, HU, LPS)."""

from __future__ import annotations

import numpy as np

TUMOR_KINDS = ("solid", "part-solid", "ground-glass", "spiculated", "juxta-pleural", "juxta-vascular")
# pleural-mass: against the lateral chest wall, 15-30 mm in radius. attached-mass: against any
# pleural surface (chest wall, mediastinum, diaphragm), 10-50 mm, often with dense lung beside
# it (atelectasis or consolidation), which is not tumour: the hard part of real masses.
MASS_KINDS = ("pleural-mass", "attached-mass")

# ---------------------------------------------------------------------------------------
# Tissue values, HU of a non-contrast chest CT.
HU_AIR = -1000.0
HU_FAT = -100.0
HU_MEDIASTINAL_FAT = -90.0
HU_SKIN = 20.0
HU_MUSCLE = 45.0
HU_BLOOD = 40.0
HU_AORTA = 45.0
HU_HEART = 40.0
HU_OESOPHAGUS = 40.0
HU_AIRWAY_WALL = 40.0
HU_LIVER = 55.0
HU_SPLEEN = 45.0
HU_STOMACH = 15.0
HU_CORTICAL_BONE = 1000.0
HU_RIB_MARROW = 300.0
HU_VERTEBRA_CANCELLOUS = 350.0
HU_VERTEBRA_CORTEX = 900.0
HU_POSTERIOR_ARCH = 650.0
HU_DISC = 85.0
HU_CANAL = 25.0
HU_CARTILAGE = 120.0
HU_JUNCTION_LINE = 20.0
# Parenchyma: mean at mid-depth, the supine gravity gradient (dependent lung is denser) and
# the amplitude of the mm-scale texture (secondary lobules, sub-resolution vessels).
HU_PARENCHYMA = -880.0
PARENCHYMA_GRAVITY_HU = 40.0
PARENCHYMA_TEXTURE_HU = 28.0
# Tumours: mean HU and texture amplitude.
HU_TUMOR_SOLID = 40.0
TUMOR_SOLID_TEXTURE_HU = 12.0
HU_TUMOR_GGO_HALO = -450.0
HU_TUMOR_GGO = -560.0
TUMOR_GGO_TEXTURE_HU = 50.0
# Dense lung beside a mass: collapsed (atelectasis, 0-40 HU) or filled (consolidation, down to -150 HU).
HU_DENSE_LUNG = (-150.0, 40.0)
DENSE_LUNG_TEXTURE_HU = 25.0
DENSE_LUNG_SHARE = 0.6  # of attached masses

# Noise grain: in-plane Gaussian correlation of the noise (real CT noise is correlated over
# about a millimetre: neighbouring 0.6-0.7 mm pixels correlate at 0.7-0.85).
NOISE_GRAIN_MM = 0.7
# Reconstruction kernels: noise grain (mm), point-spread (mm) and noise standard deviation
# (HU, a range to draw from). Sharp lung kernels give fine, strong noise and crisp edges;
# smooth soft-tissue kernels give coarse, weak noise and soft edges.
KERNELS = {
    "smooth": dict(grain_mm=1.0, blur_mm=1.2, noise_hu=(8.0, 20.0)),
    "standard": dict(grain_mm=NOISE_GRAIN_MM, blur_mm=1.0, noise_hu=(15.0, 35.0)),
    "sharp": dict(grain_mm=0.35, blur_mm=0.55, noise_hu=(40.0, 90.0)),
}
HU_CLIP = (-1024.0, 3071.0)

# Where the field of view is centred (LPS mm): the middle of the thorax.
FOV_CENTRE_LPS = (0.0, 5.0, 0.0)

# ---------------------------------------------------------------------------------------
# Anatomy, mm. Outlines are superellipses |dx/a|^n + |dy/b|^n = 1 with separate anterior and
# posterior half-depths b.
BODY_OUTLINE = dict(half_width=160.0, anterior=110.0, posterior=125.0, exponent=2.6)
SKIN_MM = 2.0
FAT_INSET = dict(lateral=14.0, anterior=10.0, posterior=10.0)
# Thoracic cavity (parietal pleura): this outline at CAVITY_DOME_START_Z, widening downwards by
# CAVITY_TAPER over CAVITY_TAPER_MM (the rib cage is a cone); above CAVITY_DOME_START_Z it is
# cut by two ellipsoidal caps, one per lung, that close at LUNG_APEX_Z: the two apices.
CAVITY_OUTLINE = dict(half_width=128.0, anterior=88.0, posterior=90.0, exponent=2.4)
CAVITY_TAPER = 0.09
CAVITY_TAPER_MM = 175.0
CAVITY_DOME_START_Z = 45.0
LUNG_APEX_Z = 130.0
APEX_DOME = dict(x=60.0, y=12.0, rx=82.0, ry=100.0)
# Diaphragm: two domes, the right one higher; z of the surface = peak - depth * r^2 with r the
# normalised horizontal distance from the dome's centre (r = 1 near the chest wall).
DIAPHRAGM_DOMES = (
    dict(x=-60.0, y=-15.0, peak_z=-48.0, depth=80.0, rx=80.0, ry_anterior=120.0, ry_posterior=105.0),
    dict(x=60.0, y=-12.0, peak_z=-62.0, depth=66.0, rx=80.0, ry_anterior=120.0, ry_posterior=105.0),
)
DIAPHRAGM_THICKNESS_MM = 5.0
# The trachea descends in the midline to the carina, where the main bronchi part.
CARINA_LPS = (0.0, 12.0, 28.0)
# Smoothing radius of the mediastinal outline (smooth union of its organs).
MEDIASTINUM_SMOOTHING_MM = 8.0
# The midline septum of fat between the lungs (anterior mediastinum); with lungs_touch it is
# absent over the anterior junction, where the lungs meet at x = 0.
SEPTUM_HALF_WIDTH_MM = 6.0
ANTERIOR_JUNCTION = dict(y_max=-40.0, z_min=5.0, z_max=85.0)
JUNCTION_LINE_HALF_MM = 0.5
# Spine: vertebral bodies every LEVEL_SPACING_MM, level 0 (T1) at TOP_LEVEL_Z.
VERTEBRA = dict(y=52.0, rx=21.0, ry=16.0, height=19.0, cortex=1.5)
TOP_LEVEL_Z = 118.0
LEVEL_SPACING_MM = 23.5
SPINAL_CANAL = dict(y=79.0, radius=9.0)
RIB_RADIUS_MM = 4.5
RIB_CORTEX_MM = 1.3
CARTILAGE_RADIUS_MM = 4.5
# Pulmonary vessel trees (arteries from the hila, veins from the left atrium), grown by
# splitting territories of lung points: points per tree system (one per lung and kind), points
# per terminal branch, and the terminal radius (radius ~ points^(1/3), Murray's law).
VESSEL_POINTS_PER_SYSTEM = 3200
VESSEL_POINTS_PER_TERMINAL = 4
VESSEL_MIN_RADIUS_MM = 0.6
# Texture lattice step (value noise, defined in mm so every resolution shows the same texture).
TEXTURE_STEP_MM = 2.0
# Step of the coarse lattice of lung depth used to grow vessels and to place tumours.
DEPTH_LATTICE_MM = 3.0
ANATOMY_BOX = (np.array([-165.0, -115.0, -160.0]), np.array([165.0, 130.0, 150.0]))  # lo, hi (x, y, z)

# Voxels per rendering slab (about 16 MB per float32 array).
SLAB_VOXELS = 4_000_000
_BIG = np.float32(1.0e4)

