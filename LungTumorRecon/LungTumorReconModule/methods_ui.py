"""The method choices as a clinician reads them in the panel's combo boxes.

Each stage's methods are an :class:`~enum.Enum` whose members' names and values are the
method ids (the parameter node stores a member's name, so a saved scene holds the CLI's
words, as it did when the fields were plain strings). Slicer's enum connector shows
``label()``: the library's words with the "recommended" mark
(:func:`~LungTumorReconLib.pipeline.methods.method_label`). No Qt is imported here at module
level, so the parameter node's class can name these types without desktop Slicer.
"""

from __future__ import annotations

from enum import Enum

from LungTumorReconLib.pipeline import methods


class MethodChoice(Enum):
    """A stage's method; ``value`` (and ``name``) is the method's id."""

    def label(self) -> str:
        """What the combo box shows (Slicer's QComboBoxToEnumConnector calls ``label``)."""
        return methods.method_label(STAGE_OF_CHOICE[type(self).__name__], self.value)

    def description(self) -> str:
        """When to use it: the item's tooltip."""
        return methods.method_description(STAGE_OF_CHOICE[type(self).__name__], self.value)


def _choices(class_name: str, stage: str) -> type[MethodChoice]:
    # the functional API: method ids such as "r3d-dense-unet" are not Python identifiers
    return MethodChoice(class_name, [(m, m) for m in methods.METHOD_CHOICES[stage]], module=__name__,
                        qualname=class_name)


STAGE_OF_CHOICE = {"LungMethod": "lungs", "TumorMethod": "tumor", "ReconMethod": "recon", "DeviceChoice": "device"}
LungMethod = _choices("LungMethod", "lungs")
TumorMethod = _choices("TumorMethod", "tumor")
ReconMethod = _choices("ReconMethod", "recon")
DeviceChoice = _choices("DeviceChoice", "device")
# the combo box of each choice in the .ui, and the CLI option it stands for
COMBO_BOXES = {"lungMethodComboBox": (LungMethod, "--lungs"), "tumorMethodComboBox": (TumorMethod, "--tumor"),
               "reconMethodComboBox": (ReconMethod, "--recon"), "deviceComboBox": (DeviceChoice, "--device")}
COMBO_PURPOSE = {"lungMethodComboBox": "How the lungs are segmented",
                 "tumorMethodComboBox": "How the tumour is segmented",
                 "reconMethodComboBox": "How the 3D tumour model is built",
                 "deviceComboBox": "Where the networks run: the ResUNet lungs, the deep tumour methods and the GAN "
                                   "model"}


def default(choice: type[MethodChoice]) -> MethodChoice:
    """The stage's recommended method (the CLI's default)."""
    return choice(methods.DEFAULTS[STAGE_OF_CHOICE[choice.__name__]])


def method_id(choice: MethodChoice | str) -> str:
    """The id of a parameter node's method field (a script may have set the id itself)."""
    return choice.value if isinstance(choice, MethodChoice) else str(choice)


def combo_tooltip(name: str) -> str:
    """A combo box's tooltip: what it chooses, then one line per method on when to use it."""
    choice, option = COMBO_BOXES[name]
    lines = [f"{COMBO_PURPOSE[name]} (the CLI's {option})."]
    lines += [f"• {m.label()}: {m.description()}" for m in choice]
    return "\n".join(lines)


def describe_method_combos(ui, tooltip_role) -> None:
    """Each method combo box's tooltips: the box's own, and one per item (``tooltip_role`` is
    Qt's ToolTipRole). Called after the parameter node's connectGui, which refills the boxes."""
    for name, (choice, _option) in COMBO_BOXES.items():
        combo = getattr(ui, name)
        combo.toolTip = combo_tooltip(name)
        for index, member in enumerate(choice):
            combo.setItemData(index, member.description(), tooltip_role)
