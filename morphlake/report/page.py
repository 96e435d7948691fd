"""`morphlake report`: one self-contained HTML page (Plotly's JS inlined, thumbnails as data URIs) about one
model's embeddings: coverage, an embedding map, nuisance vs biological dimensions, agreement, run history."""

from __future__ import annotations

import json
import shlex
import time
from dataclasses import KW_ONLY, dataclass
from importlib import resources
from pathlib import Path

import duckdb
import jinja2
import numpy as np
import plotly.graph_objects as go
from plotly.offline import get_plotlyjs

from morphlake import __version__
from morphlake.common.extras import install_hint
from morphlake.lake.files import write_atomic
from morphlake.lake.layout import Lake
from morphlake.report import analysis, charts
from morphlake.report.analysis import Sample
from morphlake.report.health import model_coverage, not_in_df02, read_runs, split_error
from morphlake.report.lakedb import connect, require_model
from morphlake.report.projection import project
from morphlake.report.summary import command_name
from morphlake.report.thumbnails import thumbnails
from morphlake.steps.build.step import model_configs


@dataclass(frozen=True)
class ReportOptions:
    model_name: str
    sample: int = 20_000  # rows drawn for the map's projection and the dimension analysis
    points: int = 5_000  # of those, plotted on the map
    _: KW_ONLY
    thumbnails: int = 300  # of those, with an image embedded
    method: str = "pca"
    zn_frac: float = 0.2
    against: str | None = None
    seed: int = 0


# Each chart tells the page it has drawn (the browser test waits for them all).
DRAWN = "window.chartsDrawn = (window.chartsDrawn || 0) + 1;"
ON_CLICK = "document.getElementById('{plot_id}').on('plotly_click', function (e) { showSnip(e.points[0]); });"


def chart_html(fig: go.Figure, name: str, *, extra_js: str = "") -> str:
    return fig.to_html(
        full_html=False,
        include_plotlyjs=False,
        div_id=f"chart-{name}",
        config={"displaylogo": False, "responsive": True},
        post_script=extra_js + DRAWN,
    )


def run_rows(runs: list[dict]) -> list[dict]:
    rows = []
    for r in reversed(runs):
        counts = r.get("counts") or {}
        message, hint = split_error(r.get("error", ""))
        rows.append(
            {
                "run_id": r.get("run_id"),
                "command": r.get("command"),
                "outcome": r.get("outcome"),
                "started": r.get("started"),
                "elapsed_s": r.get("elapsed_s"),
                "provider": (r.get("provider") or {}).get("used", ""),
                "images_per_s": counts.get("images_per_s", ""),
                "skipped": counts.get("skipped", 0),
                "error": message.splitlines()[0] if message else "",
                "hint": hint,
            }
        )
    return rows


def skipped_rows(runs: list[dict], limit: int = 200) -> tuple[list[dict], int]:
    items = [{"run_id": r.get("run_id"), **item} for r in reversed(runs) for item in r.get("skipped_items", [])]
    return items[:limit], len(items)


STATE_DICT = "encoder_reformatted.pt"


def agreement_recipe(lake: Lake, model_name: str) -> dict:
    """The commands that embed the store's snips under a second model name (what the agreement section compares),
    for this lake: from the model's state dict where the lake's runs lead to one; else with its place held, and
    what they need."""
    folders = list(dict.fromkeys(config.parent for config in model_configs(lake, model_name)))
    state = next((folder / STATE_DICT for folder in folders if (folder / STATE_DICT).is_file()), None)
    other = f"{model_name}_onnx"
    source = shlex.quote(str(state)) if state else f"<model folder>/{STATE_DICT}"
    target = shlex.quote(str(state.parent.parent / other / "encoder.onnx")) if state else f"{other}.onnx"
    run, at = command_name(), f"--lake {shlex.quote(str(lake.root))}"
    return {
        "commands": [
            f"{run} export-onnx --state-dict {source} --model-name {other} -o {target}",
            f"{run} embed --model {target} {at}",
            f"{run} report --model-name {model_name} --against {other} {at} -o report.html",
        ],
        "state_dict": str(state) if state else None,
        "looked_in": [str(folder) for folder in folders],
        "needs": None if state else install_hint("export"),
    }


def page_facts(
    con: duckdb.DuckDBPyConnection, lake: Lake, options: ReportOptions, *, coverage: dict, sample: Sample
) -> dict:
    """What the page says of the model, the lake and the warehouse, and its coverage section."""
    rows, onnx_rows, weights, shas = con.execute(
        "select count(*), count(*) filter (where source = 'onnx'), list(distinct encoder_weights), "
        "list(distinct model_sha256) from model_embeddings"
    ).fetchall()[0]
    dim = sample.z.shape[1] if len(sample) else len(analysis.z_mu_columns(con, "model_embeddings"))
    built = lake.warehouse.exists()
    return {
        "model_name": options.model_name,
        "dim": dim,
        "nuisance": int(np.floor(dim * options.zn_frac)),
        "lake": str(lake.root),
        "warehouse": str(lake.warehouse) if built else None,
        "warehouse_built": time.strftime("%Y-%m-%d %H:%M", time.localtime(lake.warehouse.stat().st_mtime))
        if built
        else None,
        "generated": time.strftime("%Y-%m-%d %H:%M:%S %z"),
        "version": __version__,
        "rows": rows,
        "onnx_rows": onnx_rows,
        "legacy_rows": rows - onnx_rows,
        "weights": sorted(w for w in weights if w),
        "shas": sorted(s for s in shas if s),
        "coverage": coverage,
        "lacking": [e["experiment_date"] for e in coverage["experiments"] if e["embedded"] == 0],
        "not_in_df02": not_in_df02(lake),
        "sample_total": sample.total,
        "sample_size": len(sample),
        "options": options,
        "charts": {"coverage": chart_html(charts.coverage_figure(coverage["experiments"]), "coverage")},
    }


def add_map(page: dict, con: duckdb.DuckDBPyConnection, sample: Sample, *, options: ReportOptions) -> dict[str, str]:
    """The embedding map and the dimensions section of a sample of two rows or more; returns the thumbnails."""
    coords, about, axes = project(sample.z, options.method, seed=options.seed)
    n = min(options.points, len(sample))
    thumbs, unreadable = thumbnails(sample.snip_id[:n], sample.path[:n], options.thumbnails)
    fig = charts.map_figure(
        coords[:n],
        sample.snip_id[:n],
        sample.experiment[:n],
        perturbations=sample.perturbation[:n],
        stages=sample.stage[:n],
        axes=axes,
    )
    page["charts"]["map"] = chart_html(fig, "map", extra_js=ON_CLICK)
    page.update(map_points=n, map_axes=about, thumbs=len(thumbs), thumbs_unreadable=unreadable)
    spread = analysis.dimension_spread(con)
    r2 = analysis.stage_r2(sample.z, sample.stage)
    eta2 = analysis.group_eta2(sample.z, sample.perturbation)
    nuisance = page["nuisance"]
    page["charts"]["dims"] = chart_html(charts.dimensions_figure(spread, r2, eta2, nuisance=nuisance), "dims")
    page["blocks"] = analysis.block_summary(sample, nuisance)
    return thumbs


def add_agreement(page: dict, con: duckdb.DuckDBPyConnection, lake: Lake, *, options: ReportOptions) -> int:
    """The legacy store vs ONNX section (or the recipe for it); returns how many snips it compares."""
    agree = analysis.agreement(con, lake, options.model_name, against=options.against)
    page["agreement"] = agree
    page["recipe"] = agreement_recipe(lake, options.model_name)
    if agree.count:
        page["charts"]["agreement"] = chart_html(charts.agreement_figure(agree.cosines), "agreement")
        page["agreement_stats"] = {
            "min": float(agree.cosines.min()),
            "p01": float(np.quantile(agree.cosines, 0.01)),
            "median": float(np.median(agree.cosines)),
            "below_099": int((agree.cosines < 0.99).sum()),
        }
    return agree.count


def add_runs(page: dict, lake: Lake) -> None:
    """The run history: every run, the items skipped, and (with embed runs) their speed."""
    runs = read_runs(lake)
    page["runs"] = run_rows(runs)
    page["skipped"], page["skipped_total"] = skipped_rows(runs)
    if any(r.get("command") == "embed" for r in runs):
        page["charts"]["runs"] = chart_html(charts.runs_figure(runs), "runs")


def render(page: dict, thumbs: dict[str, str]) -> str:
    """The page's HTML: the template with Plotly's JS and the thumbnails inlined."""
    template = jinja2.Environment(autoescape=True).from_string(
        resources.files("morphlake.report").joinpath("report.html.j2").read_text()
    )
    return template.render(
        page=page,
        plotly_js=get_plotlyjs(),
        thumbs_json=json.dumps(thumbs).replace("</", "<\\/"),
    )


def build_report(lake: Lake, options: ReportOptions) -> tuple[str, dict]:
    """(the page's HTML, a summary of what it shows)."""
    require_model(lake, options.model_name)
    start = time.perf_counter()
    con = connect(lake)
    coverage = model_coverage(con, lake, options.model_name)  # also makes the model_embeddings view
    sample = analysis.draw_sample(con, options.sample, seed=options.seed)
    page = page_facts(con, lake, options, coverage=coverage, sample=sample)
    thumbs = add_map(page, con, sample, options=options) if len(sample) >= 2 else {}
    compared = add_agreement(page, con, lake, options=options)
    add_runs(page, lake)
    page["elapsed_s"] = round(time.perf_counter() - start, 2)
    summary = {
        "model_name": options.model_name,
        "rows": page["rows"],
        "sample": len(sample),
        "map_points": page.get("map_points", 0),
        "thumbnails": len(thumbs),
        "agreement_snips": compared,
        "charts": len(page["charts"]),
    }
    return render(page, thumbs), summary


def write_report(lake: Lake, output: Path, options: ReportOptions) -> dict:
    """Build the page and write it whole (a temporary renamed into place); returns the summary with the size
    and the seconds taken."""
    start = time.perf_counter()
    html, summary = build_report(lake, options)
    write_atomic(Path(output), html.encode())
    seconds = time.perf_counter() - start
    return {**summary, "path": str(output), "bytes": Path(output).stat().st_size, "seconds": seconds}
