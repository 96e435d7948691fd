"""2-D maps of z_mu for the report: PCA (numpy, always there) or UMAP (the `umap` extra)."""

from __future__ import annotations

import numpy as np

from morphlake.common.extras import install_hint
from morphlake.errors import MorphlakeError

METHODS = ("pca", "umap")


def pca(z: np.ndarray, components: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """(coordinates [n, components], explained variance ratio per component) of the centred rows, from the
    eigenvectors of the D x D covariance (cheap for many rows)."""
    if len(z) < 2:
        return np.zeros((len(z), components)), np.zeros(components)
    centred = z.astype(np.float64) - z.mean(axis=0)
    scatter = centred.T @ centred
    values, vectors = np.linalg.eigh(scatter)
    order = np.argsort(values)[::-1][:components]
    values, vectors = np.clip(values[order], 0, None), vectors[:, order]
    total = np.trace(scatter)
    ratio = values / total if total > 0 else np.zeros(len(values))
    coords = centred @ vectors
    if coords.shape[1] < components:  # fewer dimensions than components
        coords = np.pad(coords, ((0, 0), (0, components - coords.shape[1])))
        ratio = np.pad(ratio, (0, components - len(ratio)))
    # a sign per axis, so the same data gives the same picture: the largest loading positive
    signs = np.sign(vectors[np.abs(vectors).argmax(axis=0), range(vectors.shape[1])])
    signs = np.pad(signs, (0, components - len(signs)), constant_values=1)
    return coords * np.where(signs == 0, 1, signs), ratio


def umap(z: np.ndarray, *, seed: int) -> np.ndarray:
    try:
        import umap as umap_learn
    except ImportError:
        raise MorphlakeError(
            "the UMAP map needs umap-learn", f"{install_hint('umap')}; or use the PCA map (--map pca)"
        ) from None
    neighbours = max(2, min(15, len(z) - 1))
    return umap_learn.UMAP(n_neighbors=neighbours, metric="cosine", random_state=seed, n_jobs=1).fit_transform(z)


def project(z: np.ndarray, method: str, *, seed: int = 0) -> tuple[np.ndarray, str, tuple[str, str]]:
    """(2-D coordinates, what they are, the two axis titles) for `method` in METHODS."""
    if method == "umap":
        return umap(z, seed=seed), "UMAP of z_mu (cosine, up to 15 neighbours)", ("UMAP 1", "UMAP 2")
    coords, ratio = pca(z)
    note = f"PCA of z_mu: PC1 holds {ratio[0]:.0%}, PC2 {ratio[1]:.0%} of the variance"
    return coords, note, (f"PC1 ({ratio[0]:.0%})", f"PC2 ({ratio[1]:.0%})")
