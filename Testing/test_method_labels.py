"""The words the panels show for each method: a label named as its paper names it, one line on
when to use it, and the recommended mark on each stage's default only."""

from LungTumorReconLib.pipeline import methods


def test_every_method_has_a_label_and_a_description_and_only_defaults_are_recommended():
    for stage, choices in methods.METHOD_CHOICES.items():
        for method in choices:
            label, description = methods.method_label(stage, method), methods.method_description(stage, method)
            assert label != method and description and "\n" not in description, (stage, method)
            assert label.endswith("— recommended") == (method == methods.DEFAULTS[stage]), (stage, method, label)
    assert methods.method_label("tumor", "gk") == "Gustafson–Kessel fuzzy clustering — recommended"
    assert methods.method_label("tumor", "fcm") == "Fuzzy C-means"
    assert methods.method_label("tumor", "unknown") == "unknown"
