"""2-D maps of z_mu for the report: PCA (numpy, always there) or UMAP (the `umap` extra)."""

from __future__ import annotations

import numpy as np

from morphlake.errors import MorphlakeError

METHODS = ("pca", "umap")


def pca(z: np.ndarray, components: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """(coordinates [n, components], explained variance ratio per component) of the centred rows."""
    centred = z - z.mean(axis=0)
    if len(z) < 2:
        return np.zeros((len(z), components)), np.zeros(components)
    _, s, vt = np.linalg.svd(centred, full_matrices=False)
    variance = s**2
    ratio = variance[:components] / variance.sum() if variance.sum() > 0 else np.zeros(components)
    coords = centred @ vt[:components].T
    if coords.shape[1] < components:  # fewer dimensions than components
        coords = np.pad(coords, ((0, 0), (0, components - coords.shape[1])))
        ratio = np.pad(ratio, (0, components - len(ratio)))
    return coords, ratio


def umap(z: np.ndarray, *, seed: int) -> np.ndarray:
    try:
        import umap as umap_learn
    except ImportError:
        raise MorphlakeError(
            "the UMAP map needs umap-learn", "install the extra: pip install 'morphlake[umap]', or use the PCA map"
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
