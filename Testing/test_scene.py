"""The scene layer on real MRML classes (slicer-core): build, save, reload into a fresh scene."""

import numpy as np
import pytest
import SimpleITK as sitk

from LungTumorReconLib.coordinates import VolumeGeometry
from LungTumorReconLib.io.seeds import Seed
from LungTumorReconLib.io.segmentation import read_segments
from LungTumorReconLib.mrml.scene import Scene
from LungTumorReconLib.surface.marching_cubes import marching_cubes_surface, surface_volume_ml


@pytest.fixture()
def geometry():
    angle = np.deg2rad(10)
    rot = np.array([[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0], [0, 0, 1]])
    return VolumeGeometry((48, 40, 24), (0.8, 0.7, 2.5), (-20.0, 30.0, -150.0), tuple(rot.ravel()))


@pytest.fixture()
def content(geometry):
    rng = np.random.default_rng(0)
    ct = rng.integers(-1000, 400, size=geometry.shape_kji).astype(np.int16)
    lung = np.zeros(geometry.shape_kji, bool)
    lung[2:20, 5:35, 4:24] = True
    other = np.zeros(geometry.shape_kji, bool)
    other[2:20, 5:35, 26:44] = True
    tumor = np.zeros(geometry.shape_kji, bool)
    tumor[8:13, 12:20, 8:16] = True  # inside the right lung: overlapping segments
    return ct, {"right lung": lung, "left lung": other, "tumor": tumor}


def test_volume_round_trip_keeps_voxels_and_geometry(tmp_path, geometry, content):
    ct, _ = content
    scene = Scene()
    node = scene.add_volume(ct, geometry)
    assert Scene.volume_geometry(node) == pytest.approx(geometry) or np.allclose(
        Scene.volume_geometry(node).ijk_to_lps_matrix(), geometry.ijk_to_lps_matrix()
    )
    scene.save_node(node, tmp_path / "ct.nrrd")
    image = sitk.ReadImage(str(tmp_path / "ct.nrrd"))  # LPS on disk
    assert np.array_equal(sitk.GetArrayFromImage(image), ct)
    assert np.allclose(image.GetOrigin(), geometry.origin)
    assert np.allclose(image.GetDirection(), geometry.direction)
    fresh = Scene()
    loaded = fresh.add_volume_from_file(tmp_path / "ct.nrrd")
    assert np.array_equal(Scene.volume_array(loaded), ct)
    assert np.allclose(Scene.volume_geometry(loaded).ijk_to_lps_matrix(), geometry.ijk_to_lps_matrix())


def test_overlapping_segments_are_stored_in_layers(tmp_path, geometry, content):
    ct, masks = content
    scene = Scene()
    volume = scene.add_volume(ct, geometry)
    seg = scene.set_segmentation(masks, geometry, reference_volume=volume)
    assert scene.segment_names(seg) == ["right lung", "left lung", "tumor"]
    assert scene.number_of_layers(seg) == 2  # the lungs share one layer, the tumour needs another
    path = scene.save_node(seg, tmp_path / "segmentation.seg.nrrd")
    # read back without Slicer (SimpleITK) and with Slicer's own reader, into a fresh scene
    on_disk, disk_geometry = read_segments(path)
    assert np.allclose(disk_geometry.ijk_to_lps_matrix(), geometry.ijk_to_lps_matrix())
    fresh = Scene()
    node = fresh.logics.segmentations.LoadSegmentationFromFile(str(path), True, "loaded")
    back = fresh.segment_masks(node, geometry)
    for name, mask in masks.items():
        assert np.array_equal(on_disk[name], mask), name
        assert np.array_equal(back[name], mask), name
    # replacing a segment keeps the others
    smaller = masks["tumor"].copy()
    smaller[8] = False
    scene.set_segmentation({"tumor": smaller}, geometry, node=seg)
    again = scene.segment_masks(seg, geometry)
    assert np.array_equal(again["tumor"], smaller) and np.array_equal(again["right lung"], masks["right lung"])


def test_a_replaced_segment_keeps_its_id_place_and_colour(geometry, content):
    """Re-propagating one lung must not move it to the end of the list: the slice views draw
    the segments in list order, so a moved lung would be drawn over the tumour."""
    ct, masks = content
    scene = Scene()
    volume = scene.add_volume(ct, geometry)
    seg = scene.set_segmentation(masks, geometry, reference_volume=volume)
    segmentation = seg.GetSegmentation()
    ids = [segmentation.GetNthSegmentID(i) for i in range(segmentation.GetNumberOfSegments())]
    segmentation.GetSegment(segmentation.GetSegmentIdBySegmentName("right lung")).SetColor(0.1, 0.2, 0.3)
    corrected = masks["right lung"].copy()
    corrected[10] = False
    for name, mask in (("right lung", corrected), ("tumor", masks["tumor"])):  # first and last
        scene.set_segmentation({name: mask}, geometry, node=seg)
        assert [segmentation.GetNthSegmentID(i) for i in range(segmentation.GetNumberOfSegments())] == ids
    assert scene.segment_names(seg) == ["right lung", "left lung", "tumor"]
    right_id = segmentation.GetSegmentIdBySegmentName("right lung")
    assert segmentation.GetSegment(right_id).GetColor() == pytest.approx((0.1, 0.2, 0.3))
    again = scene.segment_masks(seg, geometry)
    assert np.array_equal(again["right lung"], corrected)
    assert np.array_equal(again["left lung"], masks["left lung"]) and np.array_equal(again["tumor"], masks["tumor"])


def test_closed_surfaces_export_to_models(geometry, content):
    ct, masks = content
    scene = Scene()
    seg = scene.set_segmentation(masks, geometry, reference_volume=scene.add_volume(ct, geometry))
    models = scene.export_segments_to_models(seg)
    assert sorted(m.GetName() for m in models) == ["left lung", "right lung", "tumor"]
    shn = scene._shn()
    folder = shn.GetItemParent(shn.GetItemByDataNode(models[0]))
    assert shn.GetItemName(folder) == "Segmentation models"
    tumor = next(m for m in models if m.GetName() == "tumor")
    points = Scene.model_points_lps(tumor)
    tumour_lps = geometry.kji_to_lps(np.argwhere(masks["tumor"]))
    assert np.allclose(points.mean(axis=0), tumour_lps.mean(axis=0), atol=2.0)


def test_whole_scene_round_trip_mrml_and_mrb(tmp_path, geometry, content):
    ct, masks = content
    scene = Scene()
    volume = scene.add_volume(ct, geometry)
    scene.set_segmentation(masks, geometry, reference_volume=volume)
    surface = marching_cubes_surface(masks["tumor"], geometry)
    model = scene.add_model(surface, "tumor model")
    seeds = [Seed("tumor", (1.5, -2.5, -140.0)), Seed("right lung", (-3.0, 40.0, -130.0))]
    scene.add_seeds(seeds)
    scene.add_table([{"tumor": "tumor 1", "volume_ml": 1.25, "sphericity": 0.8}], name="Tumor measurements")

    scene.save_node(model, tmp_path / "tumor.vtk")
    mrml = scene.save_mrml(tmp_path / "bundle")
    mrb = scene.save_mrb(tmp_path / "scene.mrb")

    for path in (mrml, mrb):
        fresh = Scene.load(path)
        vol = fresh.nodes_by_class("vtkMRMLScalarVolumeNode")[0]
        assert np.array_equal(Scene.volume_array(vol), ct)
        s = fresh.nodes_by_class("vtkMRMLSegmentationNode")[0]
        back = fresh.segment_masks(s, geometry)
        assert all(np.array_equal(back[n], m) for n, m in masks.items())
        m = fresh.node_by_name("tumor model", "vtkMRMLModelNode")
        assert np.allclose(Scene.model_points_lps(m), Scene.model_points_lps(model), atol=1e-4)
        got = Scene.seeds_from_node(fresh.nodes_by_class("vtkMRMLMarkupsFiducialNode")[0])
        assert [s.label for s in got] == ["tumor", "right lung"]
        assert np.allclose([s.lps for s in got], [s.lps for s in seeds], atol=1e-6)
        rows = Scene.table_rows(fresh.node_by_name("Tumor measurements", "vtkMRMLTableNode"))
        assert rows[0]["tumor"] == "tumor 1" and float(rows[0]["volume_ml"]) == 1.25
        fresh.close()

    # tumor.vtk is LPS millimetres, as Slicer writes models
    header = (tmp_path / "tumor.vtk").read_bytes()[:80]
    assert b"SPACE=LPS" in header
    fresh = Scene()
    loaded = fresh.add_model_from_file(tmp_path / "tumor.vtk")
    assert np.allclose(Scene.model_points_lps(loaded), Scene.model_points_lps(model), atol=1e-4)
    assert abs(surface_volume_ml(surface) - masks["tumor"].sum() * geometry.voxel_volume_ml) < 0.25 * masks[
        "tumor"
    ].sum() * geometry.voxel_volume_ml


def test_table_rows_keep_large_counts_exact():
    """Voxel counts of whole lungs need more than vtkVariant's six significant digits."""
    from LungTumorReconLib.mrml.scene import Scene

    scene = Scene()
    node = scene.add_table([{"segment": "right lung", "volume_ml": 1787.8172, "voxels": 1099327}], name="t")
    assert Scene.table_rows(node) == [{"segment": "right lung", "volume_ml": 1787.8172, "voxels": 1099327}]
    scene.close()


def _translation(scene: Scene, offset_ras: tuple[float, float, float]):
    import slicer
    from vtkmodules.vtkCommonMath import vtkMatrix4x4

    node = slicer.vtkMRMLLinearTransformNode()
    scene.mrml.AddNode(node)
    matrix = vtkMatrix4x4()
    for axis, value in enumerate(offset_ras):
        matrix.SetElement(axis, 3, value)
    node.SetMatrixTransformToParent(matrix)
    return node


def test_seeds_are_the_placed_points_in_world_coordinates():
    """A point still being placed (preview) or skipped in place mode is not a seed, and a seeds
    node under a transform gives its points where the views show them (world), or in the CT's
    own frame when the CT sits under a transform too."""
    import slicer

    scene = Scene()
    node = scene.add_seeds([Seed("tumor", (10.0, 20.0, -30.0)), Seed("right lung", (-50.0, 5.0, -100.0))])
    preview = node.AddControlPoint(1.0, 2.0, 3.0)
    node.SetNthControlPointLabel(preview, "tumor")
    node.SetNthControlPointPosition(preview, 1.0, 2.0, 3.0, slicer.vtkMRMLMarkupsNode.PositionPreview)
    skipped = node.AddControlPoint(4.0, 5.0, 6.0)
    node.SetNthControlPointLabel(skipped, "left lung")
    node.SetNthControlPointPositionMissing(skipped)
    assert node.GetNumberOfControlPoints() == 4

    got = Scene.seeds_from_node(node)
    assert [s.label for s in got] == ["tumor", "right lung"]
    assert np.allclose([s.lps for s in got], [(10.0, 20.0, -30.0), (-50.0, 5.0, -100.0)])

    shift = _translation(scene, (5.0, -7.0, 11.0))  # RAS: +5 R, -7 A, +11 S
    node.SetAndObserveTransformNodeID(shift.GetID())
    moved = Scene.seeds_from_node(node)
    assert np.allclose(moved[0].lps, (10.0 - 5.0, 20.0 + 7.0, -30.0 + 11.0))  # LPS flips R and A

    # the CT under the same transform: the seeds are where they were in the CT's frame
    volume = scene.add_volume(np.zeros((4, 5, 6), dtype=np.int16), VolumeGeometry((6, 5, 4), (1.0, 1.0, 1.0), (0.0, 0.0, 0.0)))
    volume.SetAndObserveTransformNodeID(shift.GetID())
    assert np.allclose([s.lps for s in Scene.seeds_from_node(node, volume)], [s.lps for s in got])

    # a seed added in the CT's frame lands where the CT shows it, and reads back the same
    world = Scene.add_seed(node, Seed("tumor", (1.0, 2.0, 3.0)), volume)
    assert np.allclose(world, (-1.0 + 5.0, -2.0 - 7.0, 3.0 + 11.0))
    assert np.allclose(Scene.seeds_from_node(node, volume)[-1].lps, (1.0, 2.0, 3.0))
    scene.close()


def _tumour_result(ct: np.ndarray, geometry, tumours: dict[str, np.ndarray]):
    """A tumour stage's result for the presenter: the masks and their measurements, as the
    pipeline makes them (one measurement per 'tumor' component)."""
    from LungTumorReconLib.io.ct import CTVolume
    from LungTumorReconLib.pipeline.run import PipelineResult
    from LungTumorReconLib.tumor.measurements import measure_tumor, split_tumors

    tumor = tumours["tumor"]
    measured = [measure_tumor(part, ct, geometry, seed) for seed, part in split_tumors(tumor, geometry, [])]
    return PipelineResult(ct=CTVolume(ct, geometry, "ct"), seeds=[], segments=dict(tumours), tumors=measured,
                          surface_lps=None, methods={}, device="cpu")


def test_recist_axes_are_lines_per_tumour_replaced_with_the_segment(geometry, content):
    """Each tumour's longest axial diameter and short axis become locked line markups at the
    measured end points (RAS in the scene, LPS through the scene layer), named and coloured per
    tumour and tagged with their role; measuring the edited segment replaces them, and a lung
    stage keeps them."""
    from LungTumorReconLib.mrml.presenter import ResultPresenter
    from LungTumorReconLib.mrml.roles import RECIST_AXIS_COLORS, ROLE_ATTRIBUTE, Role

    ct, masks = content
    two = masks["tumor"].copy()
    two[14:18, 26:34, 30:40] = True  # a second tumour, apart from the first
    scene = Scene()
    volume = scene.add_volume(ct, geometry)
    presenter = ResultPresenter(scene)
    result = _tumour_result(ct, geometry, {"tumor": two})
    nodes = presenter.apply(result, volume, segments=["tumor"])
    lines = presenter.nodes_for(Role.RECIST_AXIS, volume)
    assert [n.GetName() for n in lines] == ["tumor 1 longest diameter", "tumor 1 short axis",
                                            "tumor 2 longest diameter", "tumor 2 short axis"]
    assert [n.GetID() for n in nodes.recist_axes] == [n.GetID() for n in lines]
    assert all(n.IsA("vtkMRMLMarkupsLineNode") and n.GetLocked() and n.GetNumberOfControlPoints() == 2 for n in lines)
    for line, ends in zip(lines, [e for t in result.tumors for e in (t.longest_axis_lps, t.short_axis_lps)]):
        assert np.allclose(Scene.line_ends_lps(line), ends)
        ras = [0.0, 0.0, 0.0]
        line.GetNthControlPointPosition(0, ras)
        assert np.allclose(ras, [-ends[0][0], -ends[0][1], ends[0][2]])  # stored in RAS
    assert np.linalg.norm(np.diff(Scene.line_ends_lps(lines[0]), axis=0)) == pytest.approx(
        result.tumors[0].longest_axial_diameter_mm)
    colours = [tuple(n.GetDisplayNode().GetSelectedColor()) for n in lines]
    assert colours[0] == colours[1] == pytest.approx(RECIST_AXIS_COLORS[0])
    assert colours[2] == colours[3] == pytest.approx(RECIST_AXIS_COLORS[1])

    # the user's own line of the same name is never touched
    own = scene.add_line([[0, 0, 0], [1, 1, 1]], "tumor 1 longest diameter")
    # a lung stage (no tumours, tumour kept): the axes stay
    lungs = _tumour_result(ct, geometry, {"tumor": two})
    lungs.tumors, lungs.segments = [], {"right lung": masks["right lung"]}
    presenter.apply(lungs, volume, segments=["right lung"])
    assert [n.GetID() for n in presenter.nodes_for(Role.RECIST_AXIS, volume)] == [n.GetID() for n in lines]
    # the tumour edited to its first part only and measured again: two new lines replace the four
    edited = _tumour_result(ct, geometry, {"tumor": masks["tumor"]})
    presenter.apply(edited, volume, segments=[])
    again = presenter.nodes_for(Role.RECIST_AXIS, volume)
    assert [n.GetName() for n in again] == ["tumor 1 longest diameter", "tumor 1 short axis"]
    assert all(scene.mrml.GetNodeByID(n.GetID()) is None for n in lines if n.GetID() not in {a.GetID() for a in again})
    assert np.allclose(Scene.line_ends_lps(again[1]), edited.tumors[0].short_axis_lps)
    assert own.GetAttribute(ROLE_ATTRIBUTE) is None and scene.mrml.GetNodeByID(own.GetID()) is own
    scene.close()


def test_an_edited_tumour_measured_again_drops_the_old_model_and_masks_the_map(geometry, content):
    """After a hand edit the recon stage measures the tumour as it now is: an earlier model no
    longer matches it (recon "none" leaves none), and the heterogeneity map keeps only the voxels
    still in the tumour. A lung stage afterwards keeps both as they are."""
    from LungTumorReconLib.mrml.presenter import ResultPresenter
    from LungTumorReconLib.mrml.roles import Role
    from LungTumorReconLib.pipeline.session import SceneUpdate

    ct, masks = content
    tumour = masks["tumor"]
    scene = Scene()
    volume = scene.add_volume(ct, geometry)
    presenter = ResultPresenter(scene)
    first = _tumour_result(ct, geometry, {"tumor": tumour})
    first.surface_lps = marching_cubes_surface(tumour, geometry)
    membership = np.where(tumour, 0.5 + 0.4 * np.random.default_rng(1).random(tumour.shape), 0.0).astype(np.float32)
    first.heterogeneity = membership
    nodes = presenter.apply(first, volume, segments=["tumor"])
    assert nodes.model is not None and nodes.heterogeneity is not None

    edited = tumour.copy()
    edited[:, :, :12] = False  # the user erases half of it
    scene.set_segmentation({"tumor": edited}, geometry, node=nodes.segmentation)
    again = _tumour_result(ct, geometry, {"tumor": edited})  # the recon stage with recon "none"
    update = SceneUpdate(again, [], None, [], remeasures_tumor=True)
    after = presenter.apply_update(update, volume, nodes.segmentation)
    assert after.model is None and presenter.node_for(Role.TUMOR_MODEL, volume) is None
    assert scene.mrml.GetNodeByID(nodes.model.GetID()) is None
    shown = Scene.volume_array(presenter.node_for(Role.HETEROGENEITY, volume))
    assert np.array_equal(shown > 0, edited) and np.allclose(shown[edited], membership[edited])

    lungs = _tumour_result(ct, geometry, {"tumor": edited})
    lungs.tumors, lungs.segments = [], {"right lung": masks["right lung"]}
    kept = presenter.apply_update(SceneUpdate(lungs, ["right lung"], None, []), volume, nodes.segmentation)
    assert np.array_equal(Scene.volume_array(kept.heterogeneity), shown)
    scene.close()


def test_moved_seeds_are_read_where_they_are_now(geometry):
    """A seed dragged after placing (its position changed in the scene) starts the next stage
    from where it is now: the stage's inputs read the points when the stage starts."""
    from LungTumorReconLib.mrml.presenter import ResultPresenter

    scene = Scene()
    volume = scene.add_volume(np.zeros(geometry.shape_kji, dtype=np.int16), geometry)
    node = scene.add_seeds([Seed("tumor", (10.0, 20.0, -30.0))])
    assert np.allclose(ResultPresenter(scene).stage_inputs("tumor", volume, node).seeds[0].lps, (10.0, 20.0, -30.0))
    node.SetNthControlPointPositionWorld(0, -12.0, -22.0, -140.0)  # dragged, in RAS
    moved = ResultPresenter(scene).stage_inputs("tumor", volume, node).seeds
    assert [s.label for s in moved] == ["tumor"] and np.allclose(moved[0].lps, (12.0, 22.0, -140.0))
    assert not node.GetLocked() and not node.GetNthControlPointLocked(0)  # the views let the user drag it
    scene.close()
