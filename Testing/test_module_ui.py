"""The module panel's .ui against the module's source, without desktop Slicer.

Slicer's own Qt (PythonQt, CTK, the MRML widgets) cannot run here, so the .ui is loaded with
PySide6's QUiLoader on the offscreen platform: Slicer's custom widgets come out as their Qt
base classes with their custom properties kept as dynamic properties (``SlicerParameterName``
among them). The parameter node's fields are read from the source with ``ast``, without
importing slicer's Qt-bound parts. Each check returns its problems, and is also run on a
deliberately broken copy to show that it can fail.
"""

from __future__ import annotations

import ast
import os
import re
import xml.etree.ElementTree as ET

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import pytest  # noqa: E402
from PySide6.QtCore import QBuffer, QByteArray, QIODevice, QObject  # noqa: E402
from PySide6.QtUiTools import QUiLoader  # noqa: E402
from PySide6.QtWidgets import QApplication, QComboBox, QWidget  # noqa: E402

from conftest import REPO  # noqa: E402

MODULE = REPO / "LungTumorRecon"
UI_TEXT = (MODULE / "Resources" / "UI" / "LungTumorRecon.ui").read_text(encoding="utf-8")
SOURCE = (MODULE / "LungTumorRecon.py").read_text(encoding="utf-8")
# the Widget's parts that use ``self.ui`` too (LungTumorReconModule/): their names are checked with it
UI_USERS = ["seeds_section.py", "correction_panel.py"]
SECTIONS_SOURCE = "".join((MODULE / "LungTumorReconModule" / f).read_text(encoding="utf-8") for f in UI_USERS)
UI_SOURCE = SOURCE + SECTIONS_SOURCE
# the parameter node's Enum field types (LungTumorReconModule/methods_ui.py: the methods by their labels)
ENUM_TYPES = {"LungMethod", "TumorMethod", "ReconMethod", "DeviceChoice"}
PARAMETER_CLASS = "LungTumorReconParameterNode"
SECTIONS = ["Input", "Lungs", "Tumour", "3D reconstruction", "Results"]
# What Slicer 5.8.1's parameterNodeWrapper can bind (Base/Python/slicer/parameterNodeWrapper/
# guiConnectors.py at v5.8.1): each connector's canRepresent takes an exact ``type(widget)`` from
# this list and a field type. Slicer 5.10.0 adds ctkCheckablePushButton (bool), ctkColorPickerButton
# (QColor) and, in Modules/Loadable/Markups/MarkupsLib, qSlicerSimpleMarkupsWidget (nodes); the module
# must also run on 5.8, so only 5.8.1's list counts. A failed match raises "Unable to create GUI
# connector", and then no widget of the panel is bound.
SLICER_5_8_CONNECTORS = {
    "QCheckBox": {"bool"}, "ctkCheckBox": {"bool"},  # QCheckBoxToBoolConnector, l.156-159
    "QPushButton": {"bool"},  # QCheckablePushButtonToBoolConnector, l.189-192
    "QSlider": {"int"}, "QSpinBox": {"int"},  # QSliderOrSpinBoxToIntConnector, l.225-228
    # QDoubleSpinBoxCtkSliderWidgetToFloatConnector, l.289-295
    "QDoubleSpinBox": {"float"}, "ctkSliderWidget": {"float"}, "qMRMLSliderWidget": {"float"},
    "ctkDoubleSlider": {"float"}, "ctkDoubleSpinBox": {"float"}, "qMRMLSpinBox": {"float"},
    # QComboBoxToStringableConnector (l.355-360) and QComboBoxToEnumConnector (l.403-406)
    "QComboBox": {"int", "float", "str", "bool", "enum"}, "ctkComboBox": {"int", "float", "str", "bool", "enum"},
    "QLineEdit": {"str"}, "QLabel": {"str"}, "QTextEdit": {"str"},  # l.452-455, 483-486, 516-519
    "ctkRangeWidget": {"FloatRange"}, "ctkDoubleRangeSlider": {"FloatRange"}, "qMRMLRangeWidget": {"FloatRange"},
    "ctkPathLineEdit": {"Path"}, "ctkDirectoryButton": {"Path"},  # l.605-611, 641-647
    "qMRMLNodeComboBox": {"node"},  # qMRMLNodeComboBoxToNodeConnector, l.677-680
}
NODE_WIDGETS = {w for w, kinds in SLICER_5_8_CONNECTORS.items() if "node" in kinds}


@pytest.fixture(scope="module")
def app():
    return QApplication.instance() or QApplication([])


def load_ui(text: str) -> QWidget:
    buffer = QBuffer()
    buffer.setData(QByteArray(text.encode("utf-8")))
    buffer.open(QIODevice.ReadOnly)
    loader = QUiLoader()
    root = loader.load(buffer)
    assert root is not None, loader.errorString()
    return root


def objects_by_name(root: QWidget) -> dict[str, QObject]:
    found = {o.objectName(): o for o in root.findChildren(QObject) if o.objectName()}
    found[root.objectName()] = root
    return found


def widget_classes(text: str) -> dict[str, str]:
    """objectName -> the class the .ui names (Slicer's, which QUiLoader replaces by a base class)."""
    return {w.get("name"): w.get("class") for w in ET.fromstring(text).iter("widget")}


def parameter_fields(source: str) -> dict[str, ast.expr]:
    """The parameter node's fields and their annotations, from the class body."""
    tree = ast.parse(source)
    cls = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == PARAMETER_CLASS)
    return {s.target.id: s.annotation for s in cls.body if isinstance(s, ast.AnnAssign) and isinstance(s.target, ast.Name)}


def field_kind(annotation: ast.expr) -> str:
    """What a connector sees of a field's type: a MRML node, str, int, ... (Annotated unwrapped)."""
    if isinstance(annotation, ast.Subscript) and getattr(annotation.value, "id", None) == "Annotated":
        annotation = annotation.slice.elts[0]
    name = getattr(annotation, "id", None) or getattr(annotation, "attr", None) or ast.unparse(annotation)
    return "node" if name.startswith("vtkMRML") else "enum" if name in ENUM_TYPES else name


def is_choice(annotation: ast.expr) -> bool:
    """``Annotated[str, Choice(...)]``."""
    if not (isinstance(annotation, ast.Subscript) and isinstance(annotation.value, ast.Name)
            and annotation.value.id == "Annotated" and isinstance(annotation.slice, ast.Tuple)):
        return False
    return any(
        isinstance(a, ast.Call) and (getattr(a.func, "id", None) == "Choice" or getattr(a.func, "attr", None) == "Choice")
        for a in annotation.slice.elts[1:]
    )


def bound_widgets(root: QWidget) -> list[tuple[QObject, str]]:
    out = []
    for obj in [root, *root.findChildren(QObject)]:
        name = obj.property("SlicerParameterName")
        if name:
            out.append((obj, str(name)))
    return out


# -- the checks: each returns its problems ---------------------------------------------------------


def check_ui_names(root: QWidget, source: str) -> list[str]:
    """Every ``self.ui.<name>`` the module (and its sections) uses is an object of the .ui."""
    names = objects_by_name(root)
    used = sorted(set(re.findall(r"\bui\.(\w+)", source + SECTIONS_SOURCE)))
    return [f"self.ui.{n} is not in the .ui" for n in used if n not in names]


def check_parameter_names(root: QWidget, source: str) -> list[str]:
    """Every SlicerParameterName names a field of the parameter node."""
    fields = parameter_fields(source)
    return [f"{w.objectName()}: SlicerParameterName {name!r} is not a field of {PARAMETER_CLASS}"
            for w, name in bound_widgets(root) if name not in fields]


def check_each_field_bound_once(root: QWidget, source: str) -> list[str]:
    counts = {f: 0 for f in parameter_fields(source)}
    for _, name in bound_widgets(root):
        if name in counts:
            counts[name] += 1
    return [f"field {f!r} is bound to {n} widgets" for f, n in counts.items() if n != 1]


def check_combo_boxes_are_choices(root: QWidget, source: str) -> list[str]:
    """A combo box lists its field's choices: the field must be Choice-typed or an Enum (shown by
    its members' labels), and every such field is shown in a combo box."""
    fields = parameter_fields(source)
    problems = []
    for w, name in bound_widgets(root):
        listed = name in fields and (is_choice(fields[name]) or field_kind(fields[name]) == "enum")
        if name in fields and isinstance(w, QComboBox) and not listed:
            problems.append(f"{w.objectName()} is bound to {name!r}, which is not Annotated[str, Choice(...)] "
                            "or an Enum")
        if listed and not isinstance(w, QComboBox):
            problems.append(f"Choice field {name!r} is bound to {w.objectName()}, not a QComboBox")
    return problems


def check_node_fields(root: QWidget, source: str, text: str) -> list[str]:
    """A node-typed field is bound to a node selector (or the markups widget) offering that type."""
    fields = parameter_fields(source)
    classes = widget_classes(text)
    problems = []
    for w, name in bound_widgets(root):
        annotation = fields.get(name)
        if not (isinstance(annotation, ast.Name) and annotation.id.startswith("vtkMRML")):
            continue
        cls = classes.get(w.objectName())
        if cls not in NODE_WIDGETS:
            problems.append(f"node field {name!r} is bound to a {cls}")
        elif cls == "qMRMLNodeComboBox" and annotation.id not in list(w.property("nodeTypes") or []):
            problems.append(f"{w.objectName()} does not offer {annotation.id} for {name!r}")
    return problems


def check_connectors(root: QWidget, source: str, text: str) -> list[str]:
    """Every widget with a SlicerParameterName is one that a connector of Slicer 5.8 accepts,
    for its field's type."""
    fields = parameter_fields(source)
    classes = widget_classes(text)
    problems = []
    for w, name in bound_widgets(root):
        if name not in fields:
            continue  # check_parameter_names reports it
        cls, kind = classes.get(w.objectName()), field_kind(fields[name])
        if kind not in SLICER_5_8_CONNECTORS.get(cls, set()):
            problems.append(f"{w.objectName()}: no Slicer 5.8 connector binds a {cls} to {name!r} ({kind})")
    return problems


def check_sections(root: QWidget, source: str, text: str) -> list[str]:
    """The panel's sections, in order, each a ctkCollapsibleButton."""
    titles = []
    for w in ET.fromstring(text).iter("widget"):
        if w.get("class") == "ctkCollapsibleButton":
            prop = next((p for p in w.findall("property") if p.get("name") == "text"), None)
            titles.append(prop.findtext("string") if prop is not None else None)
    return [] if titles == SECTIONS else [f"sections are {titles}, expected {SECTIONS}"]


def check_scene_connections(root: QWidget, source: str, text: str) -> list[str]:
    """Every MRML widget gets the scene from the panel (else its selector stays empty)."""
    tree = ET.fromstring(text)
    top = tree.find("widget").get("name")
    connected = {c.findtext("receiver") for c in tree.iter("connection")
                 if c.findtext("sender") == top and c.findtext("signal") == "mrmlSceneChanged(vtkMRMLScene*)"}
    return [f"{name} ({cls}) gets no mrmlSceneChanged connection" for name, cls in widget_classes(text).items()
            if name != top and (cls.startswith("qMRML") or cls.startswith("qSlicer")) and name not in connected]


CHECKS = [check_ui_names, check_parameter_names, check_each_field_bound_once, check_combo_boxes_are_choices]
TEXT_CHECKS = [check_node_fields, check_connectors, check_sections, check_scene_connections]


def run_check(check, text: str = UI_TEXT, source: str = SOURCE) -> list[str]:
    root = load_ui(text)
    try:
        return check(root, source, text) if check in TEXT_CHECKS else check(root, source)
    finally:
        root.deleteLater()


# -- the real .ui passes every check ---------------------------------------------------------------


@pytest.mark.parametrize("check", CHECKS + TEXT_CHECKS, ids=lambda c: c.__name__)
def test_the_panel_passes(app, check):
    assert run_check(check) == []


def test_the_source_and_ui_are_what_the_checks_read(app):
    """Guards against a check passing vacuously (a renamed class, a regex that finds nothing)."""
    fields = parameter_fields(SOURCE)
    assert {"inputVolume", "seeds", "lungMethod", "tumorMethod", "reconMethod", "device", "outputSegmentation"} <= set(fields)
    assert all(field_kind(fields[f]) == "enum" for f in ("lungMethod", "tumorMethod", "reconMethod", "device"))
    assert is_choice(fields["correctLung"])
    assert len(set(re.findall(r"\bui\.(\w+)", UI_SOURCE))) >= 20
    root = load_ui(UI_TEXT)
    assert len(bound_widgets(root)) == len(fields)
    classes = widget_classes(UI_TEXT)
    assert classes["seedsMarkupsWidget"] == "qSlicerSimpleMarkupsWidget"
    assert classes["seedsSelector"] == "qMRMLNodeComboBox"
    assert {field_kind(fields[f]) for f in fields} == {"node", "str", "enum"}
    assert classes["tumorsTableView"] == "qMRMLTableView"
    assert classes["progressBar"] == "QProgressBar"
    root.deleteLater()


# -- each check fails on a broken copy ---------------------------------------------------------------


def _replace(text: str, old: str, new: str) -> str:
    assert old in text, old
    return text.replace(old, new, 1)


BROKEN = [
    (check_ui_names, "ui", ('name="placeTumorSeedButton"', 'name="placeTumourSeedButton"'),
     "self.ui.placeTumorSeedButton is not in the .ui"),
    (check_parameter_names, "ui", ("<string>lungMethod</string>", "<string>lungMethd</string>"),
     "'lungMethd' is not a field"),
    (check_each_field_bound_once, "ui", ("<string>correctLung</string>", "<string>tumorMethod</string>"),
     "'tumorMethod' is bound to 2 widgets"),
    (check_each_field_bound_once, "source", ("    device: DeviceChoice", "    unboundField: int = 0\n    device: DeviceChoice"),
     "'unboundField' is bound to 0 widgets"),
    (check_combo_boxes_are_choices, "source",
     ("correctLung: Annotated[str, Choice([RIGHT_LUNG, LEFT_LUNG])] = RIGHT_LUNG", "correctLung: str = RIGHT_LUNG"),
     "correctLungComboBox is bound to 'correctLung', which is not Annotated"),
    (check_node_fields, "ui", ("<string>vtkMRMLSegmentationNode</string>", "<string>vtkMRMLModelNode</string>"),
     "does not offer vtkMRMLSegmentationNode"),
    # the .ui before issue 19: the point list itself carried the seeds' SlicerParameterName
    (check_connectors, "ui", ('<string>seeds</string></property>\n       </widget>\n      </item>\n'
                              '      <item row="3" column="0" colspan="2">\n'
                              '       <widget class="qSlicerSimpleMarkupsWidget" name="seedsMarkupsWidget">',
                              '<string>seedsUnused</string></property>\n       </widget>\n      </item>\n'
                              '      <item row="3" column="0" colspan="2">\n'
                              '       <widget class="qSlicerSimpleMarkupsWidget" name="seedsMarkupsWidget">\n'
                              '        <property name="SlicerParameterName" stdset="0"><string>seeds</string></property>'),
     "seedsMarkupsWidget: no Slicer 5.8 connector binds a qSlicerSimpleMarkupsWidget to 'seeds' (node)"),
    (check_connectors, "ui", ('<widget class="QComboBox" name="deviceComboBox">', '<widget class="QSpinBox" name="deviceComboBox">'),
     "deviceComboBox: no Slicer 5.8 connector binds a QSpinBox to 'device' (enum)"),
    (check_combo_boxes_are_choices, "source", ("    tumorMethod: TumorMethod = default(TumorMethod)",
                                               "    tumorMethod: str = 'gk'"),
     "tumorMethodComboBox is bound to 'tumorMethod', which is not"),
    (check_sections, "ui", ("<string>Tumour</string></property>\n     <layout", "<string>Tumor</string></property>\n     <layout"),
     "sections are"),
    (check_scene_connections, "ui", ("<receiver>tumorsTableView</receiver>", "<receiver>statusLabel</receiver>"),
     "tumorsTableView (qMRMLTableView) gets no mrmlSceneChanged connection"),
]


@pytest.mark.parametrize("check,where,edit,expected", BROKEN, ids=[f"{b[0].__name__}-{i}" for i, b in enumerate(BROKEN)])
def test_each_check_fails_on_a_broken_copy(app, check, where, edit, expected):
    text = _replace(UI_TEXT, *edit) if where == "ui" else UI_TEXT
    source = _replace(SOURCE, *edit) if where == "source" else SOURCE
    problems = run_check(check, text, source)
    assert any(expected in p for p in problems), problems


def test_the_point_list_follows_the_seeds_selector(app):
    """The seeds are bound through seedsSelector; the point list shows whichever list it selects
    (a .ui connection, so it needs no code and no connector)."""
    tree = ET.fromstring(UI_TEXT)
    connections = {(c.findtext("sender"), c.findtext("signal"), c.findtext("receiver"), c.findtext("slot"))
                   for c in tree.iter("connection")}
    assert ("seedsSelector", "currentNodeChanged(vtkMRMLNode*)", "seedsMarkupsWidget",
            "setCurrentNode(vtkMRMLNode*)") in connections
    root = load_ui(UI_TEXT)
    markups = objects_by_name(root)["seedsMarkupsWidget"]
    assert not markups.property("SlicerParameterName") and markups.property("nodeSelectorVisible") is False
    root.deleteLater()


def test_the_method_boxes_show_labels_and_store_ids():
    """The parameter node stores an Enum member's name (Slicer's EnumSerializer): each name is
    the method id; the enum connector shows ``label()`` (the library's words, the default marked
    recommended); the tooltips say when to use which."""
    import types

    from LungTumorReconModule import methods_ui

    from LungTumorReconLib.pipeline import methods

    for choice, stage in ((methods_ui.LungMethod, "lungs"), (methods_ui.TumorMethod, "tumor"),
                          (methods_ui.ReconMethod, "recon"), (methods_ui.DeviceChoice, "device")):
        assert [m.name for m in choice] == [m.value for m in choice] == list(methods.METHOD_CHOICES[stage])
        labels = [getattr(choice, "label")(m) for m in choice]  # as QComboBoxToEnumConnector calls it
        assert labels == [methods.method_label(stage, m.value) for m in choice]
        assert [label.endswith("— recommended") for label in labels].count(True) == 1
        assert methods_ui.default(choice).value == methods.DEFAULTS[stage]
    assert methods_ui.TumorMethod["r3d-dense-unet"].label() == "Recurrent 3D-DenseUNet (network)"
    assert methods_ui.method_id(methods_ui.TumorMethod.gk) == methods_ui.method_id("gk") == "gk"

    class Combo:
        def __init__(self):
            self.toolTip, self.items = "", {}

        def setItemData(self, index, value, role):
            self.items[index, role] = value

    ui = types.SimpleNamespace(**{name: Combo() for name in methods_ui.COMBO_BOXES})
    methods_ui.describe_method_combos(ui, "ToolTipRole")
    tumour = ui.tumorMethodComboBox
    assert tumour.toolTip.startswith("How the tumour is segmented (the CLI's --tumor).")
    assert "• Gustafson–Kessel fuzzy clustering — recommended: From a click on the tumour" in tumour.toolTip
    assert tumour.items[0, "ToolTipRole"] == methods.method_description("tumor", "gk")
    assert len(tumour.items) == len(methods.TUMOR_METHODS)
    assert "--lungs resunet" not in ui.deviceComboBox.toolTip and "GAN" in ui.deviceComboBox.toolTip


def test_the_device_is_at_the_top_and_the_panel_says_tumour():
    """The Device drives the lung, tumour and model networks alike: it is the Input section's
    first row. Words the panel shows spell tumour one way (ids in quotes stay 'tumor')."""
    tree = ET.fromstring(UI_TEXT)
    inputs = next(w for w in tree.iter("widget") if w.get("name") == "inputsCollapsibleButton")
    first_row = [w.get("name") for item in inputs.find("layout").findall("item") if item.get("row") == "0"
                 for w in item.findall("widget")]
    assert first_row == ["deviceLabel", "deviceComboBox"]
    shown = [e.text for e in tree.iter("string") if e.text]
    words = [re.sub(r"'[^']*'|--\w+", "", text) for text in shown]  # quoted ids and options are the CLI's words
    assert not [w for w in words if re.search(r"\btumor\b", w, re.I)], "UI text spells 'tumor'"
    assert any("partial-volume rim" in text and "+25%" in text for text in shown)
