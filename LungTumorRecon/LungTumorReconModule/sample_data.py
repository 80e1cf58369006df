"""The bundled sample CT in Slicer's Sample Data module."""

from __future__ import annotations

_SAMPLE_CATEGORY = "LungTumorRecon"


def registerSampleData():
    """The bundled pyradiomics lung1 CT, offered in the Sample Data module."""
    import SampleData

    from LungTumorReconLib.resources import resource_path

    logic = SampleData.SampleDataLogic
    # Categories with a title exist from Slicer 5.12; before, a source's category is made on first use.
    if hasattr(logic, "registerCustomSampleDataCategory"):
        logic.registerCustomSampleDataCategory(_SAMPLE_CATEGORY, title="Lung Tumor Recon")
    logic.registerCustomSampleDataSource(
        category=_SAMPLE_CATEGORY,
        sampleName="LungTumorReconLung1",
        thumbnailFileName=str(resource_path("Icons", "LungTumorRecon.png")),
        uris=resource_path("SampleData", "lung1_image.nrrd").as_uri(),
        fileNames="lung1_image.nrrd",
        nodeNames="lung1",
    )
