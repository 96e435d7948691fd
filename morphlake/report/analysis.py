"""The report's figures as data: a seeded sample of one model's embeddings with df02 metadata, how much stage
and perturbation explain per z dimension, and the agreement of legacy-store rows with ONNX rows."""

from __future__ import annotations

from dataclasses import KW_ONLY, dataclass

import duckdb
import numpy as np

from morphlake.lake.layout import Lake
from morphlake.report.lakedb import has_files, literal, model_names, model_view, views, z_mu_columns

PERTURBATION, STAGE = "short_pert_name", "predicted_stage_hpf"


@dataclass(frozen=True)
class Sample:
    """A seeded sample of df03's rows (df02 snips with an embedding of the model): ids, metadata and z_mu."""

    total: int  # rows it was drawn from
    snip_id: list[str]
    experiment: list[str]
    _: KW_ONLY
    perturbation: list[str]
    stage: np.ndarray  # float, nan where unknown
    path: list[str | None]
    z: np.ndarray  # [n, D] float32

    def __len__(self) -> int:
        return len(self.snip_id)


def draw_sample(con: duckdb.DuckDBPyConnection, size: int, *, seed: int) -> Sample:
    """Up to `size` rows, drawn by a seeded hash of snip_id: the same rows for the same lake and seed, and a
    snip in the sample stays in it as the lake grows, unless pushed out by one that hashes lower."""
    zs = z_mu_columns(con, "model_embeddings")
    have = views(con)
    if "df02" in have:
        present = {r[0] for r in con.execute("describe df02").fetchall()}
        pert = f"cast(d.{PERTURBATION} as varchar)" if PERTURBATION in present else "null"
        stage = f"try_cast(d.{STAGE} as double)" if STAGE in present else "null"
        source = "model_embeddings e join df02 d on e.snip_id = d.snip_id and e.experiment_date = d.experiment_date"
    else:  # no metadata yet: every embedded snip
        pert, stage, source = "null", "null", "model_embeddings e"
    path = "s.path" if "snips" in have else "null"
    if "snips" in have:
        source += " left join snips s on e.snip_id = s.snip_id and e.experiment_date = s.experiment_date"
    total = con.execute(f"select count(*) from {source}").fetchall()[0][0]
    rows = con.execute(
        f"""
        select e.snip_id, e.experiment_date, {pert} as pert, {stage} as stage, {path} as path,
               {", ".join(f"e.{z}" for z in zs)}
        from {source}
        order by hash(e.snip_id || {literal(str(seed))}), e.snip_id
        limit {int(size)}
        """
    ).fetchall()
    z = np.array([r[5:] for r in rows], dtype=np.float32).reshape(len(rows), len(zs))
    return Sample(
        total=total,
        snip_id=[r[0] for r in rows],
        experiment=[r[1] for r in rows],
        perturbation=[r[2] if r[2] is not None else "(none)" for r in rows],
        stage=np.array([np.nan if r[3] is None else r[3] for r in rows], dtype=np.float64),
        path=[r[4] for r in rows],
        z=z,
    )


def dimension_spread(con: duckdb.DuckDBPyConnection) -> np.ndarray:
    """Standard deviation of each z_mu dimension over all of the model's embeddings."""
    zs = z_mu_columns(con, "model_embeddings")
    row = con.execute(f"select {', '.join(f'stddev_samp({z})' for z in zs)} from model_embeddings").fetchall()[0]
    return np.array([np.nan if v is None else v for v in row], dtype=np.float64)


def stage_r2(z: np.ndarray, stage: np.ndarray, degree: int = 3) -> np.ndarray:
    """Per dimension, the share of its variance a cubic in stage explains (least squares R²)."""
    known = np.isfinite(stage)
    if known.sum() <= degree + 1 or np.ptp(stage[known]) == 0:
        return np.full(z.shape[1], np.nan)
    x = (stage[known] - stage[known].mean()) / stage[known].std()
    design = np.vander(x, degree + 1)
    y = z[known].astype(np.float64)
    coef, *_ = np.linalg.lstsq(design, y, rcond=None)
    residual = ((y - design @ coef) ** 2).sum(axis=0)
    total = ((y - y.mean(axis=0)) ** 2).sum(axis=0)
    return np.where(total > 0, 1 - residual / np.where(total > 0, total, 1), np.nan)


def group_eta2(z: np.ndarray, groups: list[str]) -> np.ndarray:
    """Per dimension, the share of its variance between the groups' means (η², one-way ANOVA)."""
    labels, index = np.unique(np.asarray(groups, dtype=object).astype(str), return_inverse=True)
    if len(labels) < 2:
        return np.full(z.shape[1], np.nan)
    y = z.astype(np.float64)
    counts = np.bincount(index)
    means = np.stack([np.bincount(index, weights=y[:, j]) / counts for j in range(y.shape[1])], axis=1)
    between = (counts[:, None] * (means - y.mean(axis=0)) ** 2).sum(axis=0)
    total = ((y - y.mean(axis=0)) ** 2).sum(axis=0)
    return np.where(total > 0, between / np.where(total > 0, total, 1), np.nan)


def block_summary(sample: Sample, nuisance_dims: int) -> list[dict]:
    """Per block (nuisance 0..n-1, biological n..D-1): its share of the variance, and the share of the block's
    variance stage and perturbation explain (per-dimension figures weighted by each dimension's variance)."""
    variance = sample.z.astype(np.float64).var(axis=0)
    r2, eta2 = stage_r2(sample.z, sample.stage), group_eta2(sample.z, sample.perturbation)
    out = []
    dim = sample.z.shape[1]
    for name, lo, hi in (("nuisance", 0, nuisance_dims), ("biological", nuisance_dims, dim)):
        if hi <= lo:
            continue
        v = variance[lo:hi]
        weight = v.sum()

        def explained(values: np.ndarray, v=v, weight=weight, *, lo=lo, hi=hi) -> float | None:
            part = values[lo:hi]
            return None if weight == 0 or np.isnan(part).all() else float(np.nansum(part * v) / weight)

        out.append(
            {
                "block": name,
                "dims": f"{lo}-{hi - 1}",
                "variance_share": float(weight / variance.sum()) if variance.sum() > 0 else None,
                "stage_r2": explained(r2),
                "perturbation_eta2": explained(eta2),
            }
        )
    return out


@dataclass(frozen=True)
class Agreement:
    """Legacy-store rows of a model against ONNX rows of the same snips (from `against`)."""

    against: str | None
    candidates: list[str]
    count: int
    _: KW_ONLY
    cosines: np.ndarray
    worst: list[tuple]  # (snip_id, experiment_date, cosine, largest |difference|)


def agreement_candidates(con: duckdb.DuckDBPyConnection, lake: Lake, model_name: str, *, width: int) -> list[str]:
    """Other models of the same width whose ONNX rows cover some of this model's legacy-store snips."""
    found = []
    for other in model_names(lake):
        if other == model_name or not has_files(lake, "embeddings", other):
            continue
        model_view(con, lake, other, name="other_embeddings")
        if len(z_mu_columns(con, "other_embeddings")) != width:
            continue
        overlap = con.execute(
            "select count(*) from model_embeddings a join other_embeddings b using (snip_id) "
            "where a.source = 'legacy_csv' and b.source = 'onnx'"
        ).fetchall()[0][0]
        if overlap:
            found.append((overlap, other))
    return [name for _, name in sorted(found, reverse=True)]


def agreement(
    con: duckdb.DuckDBPyConnection, lake: Lake, model_name: str, *, against: str | None, worst: int = 20
) -> Agreement:
    """Cosine of z_mu between the model's legacy-store rows and the ONNX rows of model `against` (default: the
    other model of the same width with the most such snips), snip by snip."""
    zs = z_mu_columns(con, "model_embeddings")
    candidates = agreement_candidates(con, lake, model_name, width=len(zs))
    against = against or (candidates[0] if candidates else None)
    if against is None:
        return Agreement(None, candidates, 0, cosines=np.zeros(0), worst=[])
    model_view(con, lake, against, name="other_embeddings")
    dim = len(zs)

    def vector(alias: str) -> str:
        return f"list_value({', '.join(f'{alias}.{z}' for z in zs)})::FLOAT[{dim}]"

    con.execute(
        f"""
        create or replace temp table agreement as
        select a.snip_id, a.experiment_date,
               array_cosine_similarity({vector("a")}, {vector("b")}) as cosine,
               greatest({", ".join(f"abs(a.{z} - b.{z})" for z in zs)}) as max_abs_diff
        from model_embeddings a join other_embeddings b using (snip_id)
        where a.source = 'legacy_csv' and b.source = 'onnx'
        """
    )
    cosines = con.execute("select cosine from agreement").fetchnumpy()["cosine"].astype(np.float64)
    rows = con.execute(f"select * from agreement order by cosine, snip_id limit {int(worst)}").fetchall()
    return Agreement(against, candidates, len(cosines), cosines=cosines, worst=rows)
