"""Fine-tuning the shipped tumour segmenters on a site's own corrected cases: the cases folder
(:mod:`.cases`), the training (:mod:`.training`) and its child process for the panels (:mod:`.job`).
Not for clinical use."""

# The deep tumour methods fine-tuning supports, for the panels' choices without importing the
# training (``training.finetunable_models()`` derives the same from the registry; a test checks).
FINETUNABLE_METHODS = ("r3d-dense-unet", "dense-highres3dnet", "dense-highres3dnet-v1", "dense-highres3dnet-v2", "resunet")
