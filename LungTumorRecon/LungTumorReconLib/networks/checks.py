"""Checks of the networks' configurations, run by each configuration's ``__post_init__``: an
impossible value is refused with a one-line ``ValueError`` when the configuration is made, not
with a shape error deep inside the first forward pass."""

from __future__ import annotations

from collections.abc import Sequence


def check_positive_int(name: str, value: int) -> None:
    if not (value == int(value) and value > 0):
        raise ValueError(f"{name} must be a positive integer, got {value!r}")


def check_positive_ints(name: str, values: Sequence[int], length: int | None = None) -> None:
    """``values`` is a non-empty sequence of positive integers (of ``length`` items, if given)."""
    values = tuple(values)
    if not values or (length is not None and len(values) != length):
        expected = f"{length} " if length is not None else "one or more "
        raise ValueError(f"{name} must be {expected}positive integers, got {values}")
    if not all(int(v) == v and v > 0 for v in values):
        raise ValueError(f"{name} must be positive integers, got {values}")


def check_positive(name: str, value: float) -> None:
    if not value > 0:
        raise ValueError(f"{name} must be positive, got {value!r}")


def check_fraction(name: str, value: float) -> None:
    """``value`` lies in 0..1 (a probability or an overlap)."""
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must lie in 0..1, got {value!r}")


def check_hu_window(hu_window: Sequence[float]) -> None:
    if len(hu_window) != 2 or not hu_window[0] < hu_window[1]:
        raise ValueError(f"hu_window must be (low, high) with low < high, got {tuple(hu_window)}")


def check_segmenter_settings(config) -> None:
    """The inference settings every segmenter's configuration shares: ``window_slices`` >= 1,
    ``pixel_mm`` > 0, ``slice_mm`` None or > 0, a HU window, ``threshold`` in 0..1 and ``dilation_radius`` >= 0."""
    check_positive_int("window_slices", config.window_slices)
    check_positive("pixel_mm", config.pixel_mm)
    if getattr(config, "slice_mm", None) is not None:
        check_positive("slice_mm", config.slice_mm)
    check_hu_window(config.hu_window)
    check_fraction("threshold", config.threshold)
    if config.dilation_radius < 0:
        raise ValueError(f"dilation_radius must be non-negative, got {config.dilation_radius!r}")
