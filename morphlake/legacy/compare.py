"""`morphlake compare OLD NEW`: two df03 or latent files, row by row and z column by z column."""

from __future__ import annotations

from dataclasses import KW_ONLY, dataclass, field
from pathlib import Path

import polars as pl

from morphlake.ingest.csvfile import read_csv_strings
from morphlake.ingest.errors import InputError
from morphlake.ingest.latents import z_naming
from morphlake.ingest.naming import normalise_stem_expr

FLOAT32, FLOAT64 = "float32", "float64"
FLOAT32_DIGITS = 9  # significant digits that write any float32 so that it reads back the same


@dataclass(frozen=True)
class Side:
    """One file read for comparing: its key and flat z columns, and the precision its z values were written in."""

    frame: pl.DataFrame
    precision: str  # float32 | float64
    written: str  # how the precision was found, e.g. "Parquet float32 columns"


@dataclass(frozen=True)
class Comparison:
    old_rows: int
    new_rows: int
    only_old: list[str]
    _: KW_ONLY
    only_new: list[str]
    z_max_abs_diff: dict[str, float]  # flat z name -> largest |old - new| over shared rows
    z_only_old: list[str] = field(default_factory=list)
    z_only_new: list[str] = field(default_factory=list)
    worst: tuple[str, str, float] | None = None  # (column, snip_id, difference)
    precision: str = FLOAT64  # what the z values were compared at: float32 when either side was written so
    written: tuple[str, str] = ("", "")  # how each side's precision was found (OLD, NEW)

    def equal(self, tolerance: float = 0.0) -> bool:
        return (
            not self.only_old
            and not self.only_new
            and not self.z_only_old
            and not self.z_only_new
            and all(d <= tolerance for d in self.z_max_abs_diff.values())
        )


def significant_digits(values: pl.Expr) -> pl.Expr:
    """Significant digits of numbers written as text (1.2500 -> 3, -0.0012e-7 -> 2); null for NaN, inf, blanks."""
    mantissa = values.str.strip_chars().str.replace(r"[eE].*$", "").str.replace_all(r"[-+.]", "")
    digits = mantissa.str.strip_chars_start("0").str.strip_chars_end("0").str.len_chars()
    return pl.when(mantissa.str.contains(r"^[0-9]+$")).then(digits)


def text_precision(frame: pl.DataFrame, columns: list[str]) -> tuple[str, str]:
    """The precision z values written as text were written in: float32 when every value has at most 9 significant
    digits (what a float32 needs to read back the same), or when every value is a float32 exactly (float32 data
    written with float64's digits, as pandas writes float32 columns cast to float64); else float64."""
    most = frame.select(pl.max_horizontal(significant_digits(pl.col(c)).max() for c in columns)).item() or 0
    if most <= FLOAT32_DIGITS:
        return FLOAT32, f"CSV text, at most {most} significant digits"
    values = [pl.col(c).cast(pl.Float64, strict=False) for c in columns]
    exact = frame.select(
        pl.all_horizontal((v.cast(pl.Float32).cast(pl.Float64) == v) | v.is_null() | v.is_nan() for v in values).all()
    ).item()
    if exact:
        return FLOAT32, f"CSV text of float32 values written with up to {most} digits"
    return FLOAT64, f"CSV text, up to {most} significant digits"


def load(path: Path, key: str) -> Side:
    """A df03/latent CSV or Parquet file: key normalised, z columns renamed to the flat form, as float64, with the
    precision they were written in (Parquet: the columns' type; CSV: the digits of the text)."""
    path = Path(path)
    parquet = path.suffix.lower() == ".parquet"
    if parquet:
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
    flat = list(rename.values())
    if parquet:
        single = bool(flat) and all(frame.schema[c] == pl.Float32 for c in flat)
        precision, written = (FLOAT32 if single else FLOAT64), "Parquet columns"
    else:
        precision, written = text_precision(frame, flat)
    frame = frame.with_columns(pl.col(flat).cast(pl.Float64, strict=False) if flat else [])
    return Side(frame, precision, written)


def compare(old_path: Path, new_path: Path, key: str = "snip_id") -> Comparison:
    """Rows only in one file, and per z column the largest |old - new| over the shared rows. Each side's values are
    the floats it was written in: a float32 side's (a float32 written as text and read back as float64 is not the
    float32 Parquet holds: 0.12345679 vs 0.12345679104328156) are rounded to the float32 each stands for. At float32
    when both sides are float32 data, else at float64 (a float64 side that is not float32 data is never rounded:
    0.10000000149 differs from the float32 0.1)."""
    sides = tuple(
        Side(s.frame.with_columns(pl.exclude(key).cast(pl.Float32).cast(pl.Float64)), s.precision, s.written)
        if s.precision == FLOAT32
        else s
        for s in (load(old_path, key), load(new_path, key))
    )
    precision = FLOAT32 if all(s.precision == FLOAT32 for s in sides) else FLOAT64
    old, new = sides[0].frame, sides[1].frame
    old_ids, new_ids = set(old[key].to_list()), set(new[key].to_list())
    z_old = [c for c in old.columns if c != key]
    z_new = [c for c in new.columns if c != key]
    shared = [c for c in z_old if c in z_new]
    joined = old.join(new, on=key, how="inner", suffix="__new")
    diffs, worst = {}, None
    for col in shared:
        a, b = joined[col], joined[f"{col}__new"]
        delta = (a - b).abs()
        # NaN or a value on one side only counts as an infinite difference; the same NaN or infinity on both, none
        mismatch = a.is_null() != b.is_null()
        same = (a == b).fill_null(False) | (a.is_nan() & b.is_nan()).fill_null(False)
        delta = pl.select(
            pl.when(same).then(0.0).when(mismatch | delta.is_nan()).then(float("inf")).otherwise(delta).fill_null(0.0)
        ).to_series()
        # a Float64 series' max is a float (or None when empty); Polars types it as any Python literal
        biggest = float(delta.max()) if delta.len() else 0.0  # type: ignore[arg-type]
        diffs[col] = biggest
        at = delta.arg_max()  # None only when empty
        if at is not None and (worst is None or biggest > worst[2]):
            worst = (col, joined[key][at], biggest)
    return Comparison(
        old.height,
        new.height,
        sorted(old_ids - new_ids),
        only_new=sorted(new_ids - old_ids),
        z_max_abs_diff=diffs,
        z_only_old=[c for c in z_old if c not in z_new],
        z_only_new=[c for c in z_new if c not in z_old],
        worst=worst,
        precision=precision,
        written=(f"{sides[0].written}: {sides[0].precision}", f"{sides[1].written}: {sides[1].precision}"),
    )


def describe(result: Comparison, old: Path, new: Path, *, tolerance: float) -> str:
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
        lines.append(
            f"z values compared at {result.precision} (OLD {result.written[0]}; NEW {result.written[1]}), "
            f"tolerance {tolerance:g}" + ("" if tolerance else " (exact at that precision; --tolerance to allow more)")
        )
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
