"""Zoomable, hoverable plotly figures for index.html, as HTML fragments without plotly.js.

The page embeds one copy of plotly.js itself (:func:`plotly_script`), so every figure here
is rendered with ``include_plotlyjs=False`` and works offline. Curves are thinned to
``HTML_POINTS`` epoch buckets and sent as float32/int16, which keeps the loss curves of the
216-run, 2,000-epoch study grid near 1.5 MB (plotly.js itself is another 4.8 MB).
"""

from __future__ import annotations

import math

import numpy as np
import plotly.graph_objects as go
import polars as pl
from plotly.offline import get_plotlyjs
from plotly.subplots import make_subplots

from seqlab.report.curves import line_values, panel_keys, seed_bands
from seqlab.report.style import (
    ACTUAL_COLOUR,
    BASELINE_COLOUR,
    LINE_TITLES,
    LOSS_TITLES,
    PREDICTED_COLOUR,
    colour_for,
    config_label,
    hex_to_rgba,
    panel_title,
)

HTML_POINTS = 250
PLOT_CONFIG = {"displaylogo": False, "responsive": True, "scrollZoom": False}
FONT = {"family": "system-ui, -apple-system, Segoe UI, Roboto, sans-serif", "size": 12}


def plotly_script() -> str:
    """plotly.js itself, to inline once per page."""
    return get_plotlyjs()


def _fragment(figure: go.Figure, div_id: str) -> str:
    # A fixed div id keeps the page identical from one build of the same grid to the next.
    return figure.to_html(full_html=False, include_plotlyjs=False, div_id=div_id,
                          config=PLOT_CONFIG)


def _views(epochs: pl.DataFrame) -> list[tuple[str, str, str, pl.DataFrame]]:
    """(button label, loss column, line column, runs) for every curve view the page offers."""
    views = []
    feature_sets = line_values(epochs, "feature_set")
    for feature_set in feature_sets:
        part = epochs.filter(pl.col("feature_set") == feature_set)
        for loss in ("test_loss", "train_loss"):
            views.append((f"{LOSS_TITLES[loss]} · {feature_set}", loss, "norm", part))
    if len(feature_sets) > 1:
        views.append(("Test loss · close vs all", "test_loss", "feature_set", epochs))
    return views


def _band_traces(part: pl.DataFrame, value: str, colour: str, legend: bool, line: str) -> list:
    # Small dtypes: plotly ships typed arrays as base64, so bytes per point set the page size.
    x = part["epoch"].to_numpy().astype(np.int16 if part["epoch"].max() < 32_000 else np.int32)
    low = part["low"].to_numpy().astype(np.float32)
    high = part["high"].to_numpy().astype(np.float32)
    band = go.Scatter(
        x=np.concatenate([x, x[::-1]]), y=np.concatenate([high, low[::-1]]), fill="toself",
        fillcolor=hex_to_rgba(colour, 0.18), line={"width": 0}, hoverinfo="skip",
        legendgroup=value, showlegend=False, mode="lines",
    )
    mean = go.Scatter(
        x=x, y=part["mean"].to_numpy().astype(np.float32), mode="lines", name=value,
        line={"color": colour, "width": 1.6}, legendgroup=value, showlegend=legend,
        customdata=np.stack([low, high], axis=1),
        hovertemplate=(f"{LINE_TITLES.get(line, line)} {value}<br>epoch %{{x}}<br>mean %{{y:.4g}}"
                       "<br>min %{customdata[0]:.4g} · max %{customdata[1]:.4g}<extra></extra>"),
    )  # fmt: skip
    return [band, mean]


def _log_dtick(lows: list, highs: list):
    """Label decades only when the curves span two or more; else let plotly add 2 and 5."""
    values = [(lo, hi) for lo, hi in zip(lows, highs, strict=True)
              if lo is not None and hi is not None and lo > 0]
    if not values:
        return None
    span = min(math.log10(hi / lo) for lo, hi in values)
    return 1 if span >= 2 else "D2"


def loss_curves_html(epochs: pl.DataFrame, div_id: str = "fig-loss") -> str:
    """Small multiples cell × depth, one line per norm (or feature set), buttons per view."""
    if epochs.is_empty():
        return "<p>No epoch metrics are stored for this grid.</p>"
    cells, depths = panel_keys(epochs)
    figure = make_subplots(
        rows=len(cells), cols=len(depths), shared_xaxes=True, shared_yaxes=True,
        subplot_titles=[panel_title(c, d) for c in cells for d in depths],
        horizontal_spacing=0.03, vertical_spacing=0.08 if len(cells) > 1 else 0.1,
    )  # fmt: skip
    views = _views(epochs)
    owners: list[int] = []  # which view each trace belongs to
    lows, highs = [], []
    for v, (_label, loss, line, part) in enumerate(views):
        bands = seed_bands(part, loss, line=line, max_points=HTML_POINTS)
        lows.append(bands["low"].min())
        highs.append(bands["high"].max())
        for i, value in enumerate(line_values(part, line)):
            colour = colour_for(value, i)
            for r, cell in enumerate(cells):
                for c, depth in enumerate(depths):
                    panel = bands.filter(
                        (pl.col("cell") == cell) & (pl.col("depth") == depth)
                        & (pl.col(line) == value)
                    )  # fmt: skip
                    if panel.is_empty():
                        continue
                    legend = r == 0 and c == 0
                    for trace in _band_traces(panel, value, colour, legend, line):
                        trace.visible = v == 0
                        figure.add_trace(trace, row=r + 1, col=c + 1)
                        owners.append(v)
    buttons = [
        {"label": label, "method": "update",
         "args": [{"visible": [o == v for o in owners]},
                  {"legend.title.text": LINE_TITLES.get(line, line)}]}
        for v, (label, _loss, line, _part) in enumerate(views)
    ]  # fmt: skip
    figure.update_yaxes(type="log", exponentformat="power", showgrid=True, gridcolor="#eee",
                        dtick=_log_dtick(lows, highs))
    # Whole epochs only: plotly would otherwise tick a 12-epoch run at 2.5, 7.5, ...
    figure.update_xaxes(showgrid=True, gridcolor="#eee", tickformat="d", tick0=0,
                        minor={"showgrid": False})
    if int(epochs["epoch"].max()) < 20:
        figure.update_xaxes(dtick=2 if int(epochs["epoch"].max()) > 8 else 1)
    for c in range(len(depths)):
        figure.update_xaxes(title_text="epoch", row=len(cells), col=c + 1)
    for r in range(len(cells)):
        figure.update_yaxes(title_text="loss (log)", row=r + 1, col=1)
    height, top, bottom = max(320, 250 * len(cells) + 130), 100, 50
    above = 1 + 48 / (height - top - bottom)  # the controls row, above the panel titles
    figure.update_layout(
        height=height, template="plotly_white", font=FONT, hovermode="closest",
        margin={"l": 60, "r": 20, "t": top, "b": bottom},
        legend={"title": {"text": LINE_TITLES["norm"]}, "orientation": "h", "y": above,
                "yanchor": "bottom", "x": 1.0, "xanchor": "right"},
        updatemenus=[{"type": "buttons", "direction": "right", "buttons": buttons,
                      "x": 0.0, "xanchor": "left", "y": above, "yanchor": "bottom",
                      "showactive": True, "bgcolor": "#f4f6f9"}],
    )  # fmt: skip
    return _fragment(figure, div_id)


def forecasts_html(forecasts: list[tuple[dict, pl.DataFrame]], div_id: str = "fig-forecasts") -> str:
    """Actual, model and persistence close (USD) per cell's best config, zoomable in time."""
    if not forecasts:
        return ""
    figure = make_subplots(
        rows=len(forecasts), cols=1, shared_xaxes=True, vertical_spacing=0.09,
        subplot_titles=[f"{config_label(run)} · seed {run['seed']} · RMSE ${run['test_rmse_usd']:,.0f}"
                        f" vs persistence ${run['baseline_rmse_usd']:,.0f}" for run, _ in forecasts],
    )  # fmt: skip
    series = (("actual_usd", "actual", ACTUAL_COLOUR, "solid"),
              ("baseline_usd", "persistence", BASELINE_COLOUR, "dot"),
              ("predicted_usd", "model", PREDICTED_COLOUR, "solid"))
    for r, (_run, frame) in enumerate(forecasts):
        dates = frame["date"].cast(pl.String).to_list()
        for column, name, colour, dash in series:
            figure.add_trace(go.Scatter(
                x=dates, y=frame[column].to_numpy().astype(np.float32), mode="lines", name=name,
                line={"color": colour, "width": 1.3, "dash": dash}, legendgroup=name,
                showlegend=r == 0, hovertemplate=f"{name} %{{y:$,.2f}}<extra></extra>",
            ), row=r + 1, col=1)  # fmt: skip
        figure.update_yaxes(title_text="close (USD)", tickprefix="$", row=r + 1, col=1)
    height, top, bottom = 240 * len(forecasts) + 110, 90, 40
    above = 1 + 42 / (height - top - bottom)
    spans = [{"count": n, "label": f"{n}d", "step": "day", "stepmode": "backward"}
             for n in (30, 90, 180)] + [{"step": "all", "label": "all"}]
    figure.update_layout(
        height=height, template="plotly_white", font=FONT, hovermode="x unified",
        margin={"l": 70, "r": 20, "t": top, "b": bottom},
        legend={"orientation": "h", "y": above, "yanchor": "bottom", "x": 1.0,
                "xanchor": "right", "traceorder": "normal"},
        xaxis={"rangeselector": {"buttons": spans, "x": 0.0, "xanchor": "left", "y": above,
                                 "yanchor": "bottom"}},
    )  # fmt: skip
    return _fragment(figure, div_id)


def ratio_html(leaderboard: pl.DataFrame, div_id: str = "fig-ratio") -> str:
    """Dot per config: test RMSE / persistence RMSE, with the line at 1."""
    ranked = leaderboard.filter(pl.col("rmse_ratio").is_not_null()).sort("rmse_ratio")
    if ranked.is_empty():
        return ""
    rows = ranked.to_dicts()
    figure = go.Figure(go.Scatter(
        x=[r["rmse_ratio"] for r in rows], y=[config_label(r) for r in rows], mode="markers",
        marker={"size": 9, "color": ["#2ca02c" if r["rmse_ratio"] < 1 else "#d62728" for r in rows]},
        customdata=[[r["test_rmse_usd"], r["baseline_rmse_usd"], r["n_runs"]] for r in rows],
        hovertemplate=("%{y}<br>ratio %{x:.3f}<br>RMSE %{customdata[0]:$,.2f} vs persistence "
                       "%{customdata[1]:$,.2f}<br>runs %{customdata[2]}<extra></extra>"),
    ))  # fmt: skip
    figure.add_vline(x=1.0, line_color="#222", line_width=1)
    figure.update_yaxes(autorange="reversed")
    figure.update_xaxes(title_text="test RMSE / persistence RMSE (left of 1 beats tomorrow = today)")
    figure.update_layout(height=26 * len(rows) + 110, template="plotly_white", font=FONT,
                         margin={"l": 170, "r": 20, "t": 20, "b": 50})
    return _fragment(figure, div_id)
