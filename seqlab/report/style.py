"""Colours and words shared by the PNG and the interactive figures, so both read alike."""

from __future__ import annotations

LINE_COLOURS = {
    "none": "#1f77b4",
    "batch": "#d62728",
    "layer": "#2ca02c",
    "close": "#1f77b4",
    "all": "#ff7f0e",
}
FALLBACK_COLOURS = ("#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf")
ACTUAL_COLOUR = "#222222"
PREDICTED_COLOUR = "#d62728"
BASELINE_COLOUR = "#7f7f7f"

LOSS_TITLES = {"test_loss": "Test loss", "train_loss": "Train loss"}
LINE_TITLES = {"norm": "norm", "feature_set": "features"}


def colour_for(value: str, index: int = 0) -> str:
    return LINE_COLOURS.get(value, FALLBACK_COLOURS[index % len(FALLBACK_COLOURS)])


def hex_to_rgba(colour: str, alpha: float) -> str:
    """'#rrggbb' as a CSS rgba() string (plotly bands need a translucent fill)."""
    red, green, blue = (int(colour[i : i + 2], 16) for i in (1, 3, 5))
    return f"rgba({red},{green},{blue},{alpha})"


def panel_title(cell: str, depth: int) -> str:
    return f"{cell.upper()} · depth {depth}"


def config_label(row: dict) -> str:
    return f"{row['cell']} d{row['depth']} {row['norm']} {row['feature_set']}"
