"""The report's Plotly figures: coverage, the embedding map, z dimensions, agreement and run speed."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

TEMPLATE = "plotly_white"
COLOURS = {"legacy": "#4c78a8", "onnx": "#f58518", "missing": "#d62728", "nuisance": "#9d9da1", "bio": "#54a24b"}


def _layout(fig: go.Figure, height: int, **kwargs) -> go.Figure:
    fig.update_layout(template=TEMPLATE, height=height, margin={"l": 10, "r": 10, "t": 40, "b": 10}, **kwargs)
    return fig


def coverage_figure(experiments: list[dict]) -> go.Figure:
    """Per experiment, df02 rows embedded from the legacy store, by ONNX, and without an embedding."""
    names = [e["experiment_date"] for e in experiments]
    fig = go.Figure()
    parts = (
        ("legacy store", [e["legacy_rows"] for e in experiments], COLOURS["legacy"]),
        ("ONNX", [e["onnx_rows"] for e in experiments], COLOURS["onnx"]),
        ("no embedding", [e["df02_rows"] - e["embedded"] for e in experiments], COLOURS["missing"]),
    )
    for label, values, colour in parts:
        fig.add_bar(y=names, x=values, name=label, orientation="h", marker_color=colour)
    fig.update_layout(barmode="stack", xaxis_title="df02 rows", yaxis={"autorange": "reversed", "type": "category"})
    return _layout(fig, 120 + 22 * len(names), legend={"orientation": "h", "y": 1.02, "yanchor": "bottom"})


def map_figure(
    coords: np.ndarray, ids, experiments, *, perturbations, stages: np.ndarray, axes: tuple[str, str]
) -> go.Figure:
    """Two panels of the same 2-D map: coloured by perturbation (one trace each) and by stage (a colour scale).
    Hover shows snip, experiment, perturbation and stage; customdata[0] is the snip id for the click panel."""
    fig = make_subplots(rows=1, cols=2, subplot_titles=("by perturbation", "by stage (hpf)"), horizontal_spacing=0.06)
    stage_text = ["?" if np.isnan(s) else f"{s:.1f}" for s in stages]
    custom = np.array([ids, experiments, perturbations, stage_text], dtype=object).T
    hover = "%{customdata[0]}<br>%{customdata[1]}<br>%{customdata[2]}, %{customdata[3]} hpf<extra></extra>"
    perts = np.asarray(perturbations, dtype=object)
    for pert in sorted(set(perturbations)):
        keep = perts == pert
        fig.add_scatter(
            x=coords[keep, 0],
            y=coords[keep, 1],
            mode="markers",
            name=str(pert),
            customdata=custom[keep],
            hovertemplate=hover,
            marker={"size": 6, "opacity": 0.8},
            row=1,
            col=1,
        )
    fig.add_scatter(
        x=coords[:, 0],
        y=coords[:, 1],
        mode="markers",
        name="stage",
        showlegend=False,
        customdata=custom,
        hovertemplate=hover,
        marker={
            "size": 6,
            "opacity": 0.8,
            # numpy's types leave None out of np.where's values; it takes it (an object array: null colours)
            "color": np.where(np.isnan(stages), None, stages).tolist(),  # type: ignore[call-overload]
            "colorscale": "Viridis",
            "colorbar": {"title": "hpf", "x": 1.0},
        },
        row=1,
        col=2,
    )
    fig.update_xaxes(title_text=axes[0])
    fig.update_yaxes(title_text=axes[1], col=1)
    return _layout(fig, 480, legend={"x": 0.0, "y": -0.15, "orientation": "h"})


def dimensions_figure(spread: np.ndarray, stage_r2: np.ndarray, pert_eta2: np.ndarray, *, nuisance: int) -> go.Figure:
    """Per z dimension: its spread over all embeddings, and the share of its variance stage and perturbation
    explain; the nuisance block is shaded."""
    dims = list(range(len(spread)))
    fig = make_subplots(
        rows=2,
        cols=1,
        shared_xaxes=True,
        vertical_spacing=0.08,
        subplot_titles=("spread (standard deviation of z_mu)", "share of the dimension's variance explained"),
    )
    colours = [COLOURS["nuisance"] if d < nuisance else COLOURS["bio"] for d in dims]
    fig.add_bar(x=dims, y=spread, marker_color=colours, name="spread", showlegend=False, row=1, col=1)
    fig.add_bar(x=dims, y=stage_r2, name="stage (cubic R²)", marker_color="#4c78a8", row=2, col=1)
    fig.add_bar(x=dims, y=pert_eta2, name="perturbation (η²)", marker_color="#e45756", row=2, col=1)
    if nuisance:
        for row in (1, 2):
            fig.add_vrect(x0=-0.5, x1=nuisance - 0.5, fillcolor="#bbbbbb", opacity=0.2, line_width=0, row=row, col=1)
    fig.update_xaxes(
        title_text=f"z dimension (0-{nuisance - 1} nuisance, shaded)" if nuisance else "z dimension", row=2, col=1
    )
    fig.update_yaxes(range=[0, 1], row=2, col=1)
    return _layout(fig, 460, barmode="group", legend={"orientation": "h", "y": 1.08, "yanchor": "bottom"})


def agreement_figure(cosines: np.ndarray) -> go.Figure:
    """Histogram of per-snip cosines (binned here, so the page stays small for a million snips)."""
    low = float(min(cosines.min(), 0.99)) if len(cosines) else 0.99
    counts, edges = np.histogram(cosines, bins=50, range=(low, 1.0))
    fig = go.Figure(
        go.Bar(
            x=(edges[:-1] + edges[1:]) / 2,
            y=counts,
            width=np.diff(edges),
            marker_color=COLOURS["legacy"],
            hovertemplate="cosine %{x:.5f}: %{y} snips<extra></extra>",
        )
    )
    spread = counts.max() / max(1, counts[counts > 0].min()) if counts.any() else 1
    fig.update_layout(
        xaxis_title="cosine of z_mu, legacy store vs ONNX",
        yaxis_title="snips" + (" (log scale)" if spread > 50 else ""),
        yaxis_type="log" if spread > 50 else "linear",  # a few bad snips stay visible beside a tall peak
    )
    return _layout(fig, 320)


def runs_figure(runs: list[dict]) -> go.Figure:
    """Images per second of each embed run, coloured by outcome."""
    embeds = [r for r in runs if r.get("command") == "embed"]
    colours: dict[str | None, str] = {"complete": "#54a24b", "partial": "#f58518", "failed": "#d62728"}
    fig = go.Figure(
        go.Bar(
            x=[r["run_id"] for r in embeds],
            y=[(r.get("counts") or {}).get("images_per_s", 0) for r in embeds],
            marker_color=[colours.get(r.get("outcome"), "#888") for r in embeds],
            customdata=[(r.get("provider") or {}).get("used", "?") for r in embeds],
            hovertemplate="%{x}<br>%{y} img/s on %{customdata}<extra></extra>",
        )
    )
    fig.update_layout(yaxis_title="img/s", xaxis={"type": "category", "showticklabels": len(embeds) <= 12})
    return _layout(fig, 280)
