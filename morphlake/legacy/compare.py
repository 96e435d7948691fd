"""`morphlake compare OLD NEW`: two df03 or latent files, row by row and z column by z column."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from morphlake.ingest.csvfile import read_csv_strings
from morphlake.ingest.errors import InputError
from morphlake.ingest.latents import z_naming
from morphlake.ingest.naming import normalise_stem_expr


@dataclass
class Comparison:
    old_rows: int
    new_rows: int
    only_old: list[str]
    only_new: list[str]
    z_max_abs_diff: dict[str, float]  # flat z name -> largest |old - new| over shared rows
    z_only_old: list[str] = field(default_factory=list)
    z_only_new: list[str] = field(default_factory=list)
    worst: tuple[str, str, float] | None = None  # (column, snip_id, difference)

    def equal(self, tolerance: float = 0.0) -> bool:
        return (
            not self.only_old
            and not self.only_new
            and not self.z_only_old
            and not self.z_only_new
            and all(d <= tolerance for d in self.z_max_abs_diff.values())
        )


def load(path: Path, key: str) -> pl.DataFrame:
    """A df03/latent CSV or Parquet file: key normalised, z columns renamed to the flat form, as float64."""
    path = Path(path)
    if path.suffix.lower() == ".parquet":
        frame = pl.read_parquet(path, glob=False, hive_partitioning=False)
        frame = frame.with_columns(pl.col(key).cast(pl.String)) if key in frame.columns else frame
    else:
        frame = read_csv_strings(path, "compare input")
    if key not in frame.columns:
        raise InputError(f"{path} has no {key!r} column", f"compare files keyed by {key} (df03 or a latent store)")
    zs = [c for c in frame.columns if c.startswith(("z_mu_", "z_sigma_"))]
    _, _, rename = z_naming(zs, path)
    frame = frame.select(key, *zs).rename(rename).with_columns(normalise_stem_expr(key))
    if frame[key].is_duplicated().any():
        dup = frame.filter(pl.col(key).is_duplicated())[key][0]
        raise InputError(f"{path}: {key} {dup!r} appears more than once", "compare files with one row per key")
    return frame.with_columns(pl.col(rename.values()).cast(pl.Float64, strict=False) if rename else [])


def compare(old_path: Path, new_path: Path, key: str = "snip_id") -> Comparison:
    old, new = load(old_path, key), load(new_path, key)
    old_ids, new_ids = set(old[key].to_list()), set(new[key].to_list())
    z_old = [c for c in old.columns if c != key]
    z_new = [c for c in new.columns if c != key]
    shared = [c for c in z_old if c in z_new]
    joined = old.join(new, on=key, how="inner", suffix="__new")
    diffs, worst = {}, None
    for col in shared:
        delta = (joined[col] - joined[f"{col}__new"]).abs()
        # NaN or a value on one side only counts as an infinite difference
        mismatch = joined[col].is_null() != joined[f"{col}__new"].is_null()
        delta = pl.select(
            pl.when(mismatch | delta.is_nan()).then(float("inf")).otherwise(delta).fill_null(0.0)
        ).to_series()
        biggest = float(delta.max()) if delta.len() else 0.0
        diffs[col] = biggest
        if delta.len() and (worst is None or biggest > worst[2]):
            worst = (col, joined[key][int(delta.arg_max())], biggest)
    return Comparison(
        old.height,
        new.height,
        sorted(old_ids - new_ids),
        sorted(new_ids - old_ids),
        diffs,
        [c for c in z_old if c not in z_new],
        [c for c in z_new if c not in z_old],
        worst,
    )


def describe(result: Comparison, old: Path, new: Path, tolerance: float) -> str:
    lines = [
        f"OLD {old}: {result.old_rows} rows",
        f"NEW {new}: {result.new_rows} rows",
        f"rows only in OLD: {len(result.only_old)}"
        + (f" (e.g. {', '.join(result.only_old[:5])})" if result.only_old else ""),
        f"rows only in NEW: {len(result.only_new)}"
        + (f" (e.g. {', '.join(result.only_new[:5])})" if result.only_new else ""),
    ]
    if result.z_only_old or result.z_only_new:
        lines.append(f"z columns only in OLD: {len(result.z_only_old)}, only in NEW: {len(result.z_only_new)}")
    if result.z_max_abs_diff:
        lines.append(f"z columns compared: {len(result.z_max_abs_diff)}; largest |OLD - NEW| per column:")
        ranked = sorted(result.z_max_abs_diff.items(), key=lambda kv: -kv[1])
        lines += [f"  {name:<14} {value:.3g}" for name, value in ranked[:10]]
        if len(ranked) > 10:
            lines.append(f"  … {len(ranked) - 10} more, all ≤ {ranked[10][1]:.3g}")
        if result.worst:
            lines.append(f"largest difference: {result.worst[2]:.3g} in {result.worst[0]} of {result.worst[1]}")
    else:
        lines.append("no z columns in common")
    lines.append(
        "EQUAL" + (f" (within {tolerance:g})" if tolerance else "") if result.equal(tolerance) else "DIFFERENT"
    )
    return "\n".join(lines)
