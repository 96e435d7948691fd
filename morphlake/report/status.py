"""`morphlake status`: tables, coverage of df02 per model and experiment, stale embeddings, experiments gone
from df02, the writer running now and the last failed run, as text (or `lake_health`'s data as JSON)."""

from __future__ import annotations

from morphlake.lake.layout import Lake
from morphlake.report.health import lake_health
from morphlake.report.summary import coverage_text


def _coverage_lines(model: dict, *, per_experiment: bool) -> list[str]:
    t = model["total"]
    lines = [
        f"  model {model['model_name']}: df02 rows with an embedding {coverage_text(t['embedded'], t['df02_rows'])}; "
        f"usable rows {coverage_text(t['usable_embedded'], t['usable_rows'])}; "
        f"{t['legacy_rows']} from the legacy store, {t['onnx_rows']} ONNX; {t['stale']} stale"
        + (f"; {t['image_gone']} whose image is gone" if t["image_gone"] else "")
        + (f"; {t['zero_norm']} with an all-zero z_mu (no cosine: left out of neighbours)" if t["zero_norm"] else "")
    ]
    if not per_experiment:
        return lines
    for e in model["experiments"]:
        mark = "  <- no embeddings" if e["embedded"] == 0 else ""
        stale = f", {e['stale']} stale" if e["stale"] else ""
        stale += f", {e['image_gone']} image(s) gone" if e["image_gone"] else ""
        lines.append(
            f"    {e['experiment_date']:<32} {coverage_text(e['embedded'], e['df02_rows']):<20} "
            f"usable {coverage_text(e['usable_embedded'], e['usable_rows']):<20} "
            f"legacy {e['legacy_rows']:>6} onnx {e['onnx_rows']:>6}{stale}{mark}"
        )
    return lines


def render(health: dict, *, per_experiment: bool = True) -> str:
    lines = [f"lake {health['lake']}"]
    for table, entry in health["tables"].items():
        lines.append(f"  {table:<12} {entry['files']:>4} partition file(s) {entry['rows']:>10} rows")
    for model in health["models"]:
        lines += _coverage_lines(model, per_experiment=per_experiment)
    if any(m["total"]["stale"] for m in health["models"]):
        lines.append("  stale: the snip's image changed since it was embedded (`morphlake embed` re-embeds ONNX rows)")
    if any(m["total"]["image_gone"] for m in health["models"]):
        lines.append(
            "  image gone: ONNX embeddings whose snip image is missing or unreadable since (`morphlake build` warns): "
            "restore the files and run `morphlake ingest`, or `morphlake ingest --retire-missing` drops them"
        )
    for table, experiments in health["not_in_df02"].items():
        lines.append(f"  not in df02 (kept in {table}, left out of df03): {', '.join(experiments)}")
    writer = health["writer"]
    if writer:
        lines.append(
            f"  writing now: '{writer.get('command')}' (pid {writer.get('pid')} on {writer.get('host')}, "
            f"run {writer.get('run_id')}, since {writer.get('since')})"
        )
    else:
        lines.append("  writing now: nothing")
    failed = health["last_failed_run"]
    if failed:
        lines.append(f"  last failed run: {failed['run_id']} ({failed['command']}, {failed['started']})")
        lines.append(f"    error: {failed['error']}")
        if failed["hint"]:
            lines.append(f"    hint: {failed['hint']}")
    if health["recent_runs"]:
        lines.append("  recent runs:")
        for r in health["recent_runs"]:
            lines.append(f"    {r['run_id']:<40} {r.get('outcome') or '?':<9} {r.get('elapsed_s', '?')}s")
    if health["warehouse"]:
        lines.append(f'  warehouse {health["warehouse"]} (query it: morphlake sql "select * from df03 limit 5")')
    return "\n".join(lines)


def lake_status(lake: Lake, model_name: str | None = None, *, per_experiment: bool = True) -> str:
    if not lake.root.is_dir():
        return f"no lake at {lake.root} (run `morphlake ingest` or `morphlake demo`)"
    return render(lake_health(lake, model_name), per_experiment=per_experiment)


__all__ = ["lake_status", "render"]
