"""The legacy latent store (morph_latents_<exp>.csv) -> Arrow tables with flat z column names."""

from __future__ import annotations

import re
from pathlib import Path

import polars as pl
import pyarrow as pa

from morphlake.common.zcolumns import Z_COLUMN, flat_name, z_columns
from morphlake.ingest.coerce import to_arrow
from morphlake.ingest.csvfile import read_csv_strings
from morphlake.ingest.errors import InputError, Skipped
from morphlake.ingest.naming import check_segment, normalise_stem_expr
from morphlake.ingest.paths import latent_store_dir

LATENT_FILE = re.compile(r"^morph_latents_(?P<experiment>.+)\.csv$")


def list_latent_files(data_root: Path, model_name: str) -> dict[str, Path]:
    """experiment -> latent CSV path for every morph_latents_<exp>.csv of the model (may be empty)."""
    folder = latent_store_dir(data_root, model_name)
    found = {}
    for path in sorted(folder.glob("morph_latents_*.csv")) if folder.is_dir() else []:
        named = LATENT_FILE.match(path.name)
        if named is not None:  # the glob also takes morph_latents_.csv, which names no experiment
            found[named["experiment"]] = path
    return found


def z_naming(columns: list[str], path: Path) -> tuple[str, int, dict[str, str]]:
    """Detect the z naming style; return (style, latent_dim, {old name: flat name}).

    z_sigma may be absent (stores that kept only the means); when present it must match z_mu.
    """
    matched = {c: Z_COLUMN.match(c) for c in columns if c.startswith("z_")}
    unknown = [c for c, m in matched.items() if m is None]
    if unknown:
        raise InputError(
            f"latent file {path} has unrecognised z column(s): {', '.join(unknown[:5])}",
            "z columns must be z_mu_00.. / z_sigma_00.. or z_mu_n_00.. / z_mu_b_20..",
        )
    parsed = {c: m for c, m in matched.items() if m is not None}
    styles = {"bio_nuisance" if m["part"] else "flat" for m in parsed.values()}
    if len(styles) > 1:
        raise InputError(
            f"latent file {path} mixes flat (z_mu_00) and bio/nuisance (z_mu_n_00) column names",
            "rewrite the file with one naming style",
        )
    indices: dict[str, set[int]]
    rename, indices = {}, {"mu": set(), "sigma": set()}
    for col, m in parsed.items():
        index = int(m["index"])
        indices[m["kind"]].add(index)
        rename[col] = flat_name(m["kind"], index)
    if indices["sigma"] and not indices["mu"]:
        raise InputError(
            f"latent file {path} has z_sigma columns but no z_mu columns",
            "the store needs the z_mu_* means (z_sigma_* may be left out, not z_mu_*)",
        )
    dim = len(indices["mu"])
    for kind, got in indices.items():
        if kind == "sigma" and not got:
            continue
        if got != set(range(dim)) or len(got) != dim:
            raise InputError(
                f"latent file {path} has z_{kind} indices {min(got, default=0)}..{max(got, default=-1)} "
                f"({len(got)} columns) but needs 0..{dim - 1} for both z_mu and z_sigma (or no z_sigma at all)",
                "check the file is complete and its z_mu and z_sigma columns match",
            )
    if len(set(rename.values())) != len(rename):
        raise InputError(f"latent file {path} names the same z index twice", "remove the repeated z columns")
    return (styles.pop() if styles else "flat"), dim, rename


def read_latent_file(
    path: Path, experiment: str, expected_dim: int | None = None
) -> tuple[pa.Table, str, list[Skipped]]:
    """One morph_latents CSV -> (table of snip_id, experiment_date, z_naming, flat float32 z, style, skipped).

    A store without z_sigma columns gets them as nulls (the means are all such a store kept).
    """
    check_segment("experiment_date", experiment)
    raw = read_csv_strings(path, "latent")
    if "snip_id" not in raw.columns:
        raise InputError(
            f"latent file {path} lacks the 'snip_id' column",
            "the store needs experiment_date, embryo_id, snip_id, z_mu_*, z_sigma_*",
        )
    style, dim, rename = z_naming(raw.columns, path)
    if dim == 0:
        raise InputError(f"latent file {path} has no z_mu_* / z_sigma_* columns", "check this is a latent store file")
    if expected_dim is not None and dim != expected_dim:
        raise InputError(
            f"latent file {path} has {dim} latent dims, the model has {expected_dim}",
            "check the file belongs to this model (its store folder names it)",
        )
    held = set(rename.values())
    zs = [c for c in z_columns(dim) if c in held]  # what the file holds (maybe no z_sigma)
    frame = raw.rename(rename).select("snip_id", *zs).with_columns(normalise_stem_expr("snip_id"))
    typed = frame.with_columns(pl.col(zs).cast(pl.Float32, strict=False))
    bad = typed.select(
        pl.any_horizontal([~pl.col(c).is_finite() | pl.col(c).is_null() for c in zs]).alias("bad"),
        pl.col("snip_id").is_null().alias("blank"),
        pl.col("snip_id").is_duplicated().alias("dup"),
    )
    skipped = _skipped_rows(bad, typed, raw, path=path, rename=rename)
    keep = ~(bad["bad"] | bad["blank"] | bad["dup"])
    absent = [pl.lit(None, pl.Float32).alias(c) for c in z_columns(dim) if c not in zs]
    out = (
        typed.filter(keep)
        .with_columns(pl.lit(experiment).alias("experiment_date"), pl.lit(style).alias("z_naming"), *absent)
        .select("snip_id", "experiment_date", "z_naming", *z_columns(dim))
    )
    return to_arrow(out.sort("snip_id")), style, skipped


def _skipped_rows(
    bad: pl.DataFrame, typed: pl.DataFrame, raw: pl.DataFrame, *, path: Path, rename: dict[str, str]
) -> list[Skipped]:
    """The rows read_latent_file leaves out (flags in `bad`: bad, blank, dup), each with its reasons."""
    zs = [c for c in typed.columns if c != "snip_id"]
    skipped = []
    for i, (is_bad, blank, dup) in enumerate(bad.iter_rows()):
        if not (is_bad or blank or dup):
            continue
        reasons = []
        if is_bad:
            cols = [c for c in zs if not _finite(typed[c][i])]
            reasons.append(
                f"non-finite or unparsable z value(s) in {', '.join(cols[:4])}{' ...' if len(cols) > 4 else ''}"
                f" (e.g. {raw[_orig(rename, cols[0])][i]!r})"
            )
        if blank:
            reasons.append("snip_id is blank")
        if dup:
            reasons.append("snip_id appears more than once in the file")
        skipped.append(
            Skipped(
                "latents",
                str(typed["snip_id"][i] or f"row {i + 1}"),
                f"{path}, data row {i + 1}",
                reason="; ".join(reasons),
            )
        )
    return skipped


def _finite(value) -> bool:
    return value is not None and value == value and abs(value) != float("inf")


def _orig(rename: dict[str, str], flat: str) -> str:
    return next(old for old, new in rename.items() if new == flat)


def read_latent_store(
    data_root: Path,
    model_name: str,
    experiments: list[str] | None = None,
    *,
    expected_dim: int | None = None,
    skip_bad_files: bool = False,
):
    """Yield (experiment, table, style, skipped) for each latent file of the model (optionally filtered).

    expected_dim: the model's width; None takes the first readable file's, and every other file must agree.
    skip_bad_files: a file that cannot be used at all yields (experiment, None, None, [why]) instead of raising.
    """
    check_segment("model name", model_name)
    for experiment, path in list_latent_files(data_root, model_name).items():
        if experiments is not None and experiment not in experiments:
            continue
        try:
            table, style, skipped = read_latent_file(path, experiment, expected_dim)
            expected_dim = expected_dim or sum(1 for c in table.column_names if c.startswith("z_mu_"))
            yield experiment, table, style, skipped
        except InputError as exc:
            if not skip_bad_files:
                raise
            yield (
                experiment,
                None,
                None,
                [Skipped("latents", experiment, str(path), reason=str(exc).replace("\n  hint:", ";"))],
            )
