"""The z-column grammar: flat names (z_mu_07, z_sigma_07) and the legacy bio/nuisance view of the same
index (z_mu_n_07 for the first nuisance dims, z_mu_b_20 for the rest), for a model of any width D."""

from __future__ import annotations

import re
from collections.abc import Iterable

KINDS = ("mu", "sigma")  # the mean, and the log-variance (the legacy name)
# Any z column name, flat or bio/nuisance: kind, optional part (n | b), index.
Z_COLUMN = re.compile(r"^z_(?P<kind>mu|sigma)_(?:(?P<part>[nb])_)?(?P<index>\d+)$")


def flat_name(kind: str, index: int) -> str:
    """z_mu_07: the lake's name of z index `index` of `kind` (mu or sigma)."""
    return f"z_{kind}_{index:02d}"


def z_columns(dim: int) -> list[str]:
    """Flat z column names in lake order: all means, then all log-variances."""
    return [flat_name(kind, i) for kind in KINDS for i in range(dim)]


def bio_nuisance_name(kind: str, index: int, nuisance_dims: int) -> str:
    """Legacy name of flat z index: z_mu_n_00 for nuisance dims, z_mu_b_20 for the rest."""
    return f"z_{kind}_{'n' if index < nuisance_dims else 'b'}_{index:02d}"


def flat_z_mu(names: Iterable[str]) -> list[str]:
    """The flat means among `names` (z_mu_00 …, as the lake names them), in index order."""
    found = []
    for name in names:
        match = Z_COLUMN.match(name)
        if match and match["kind"] == "mu" and match["part"] is None:
            found.append((int(match["index"]), name))
    return [name for _, name in sorted(found)]


def z_columns_in(names: Iterable[str], *, kinds: tuple[str, ...] = KINDS) -> list[str]:
    """The z columns among `names` (flat or bio/nuisance) of these kinds, in their order."""
    return [name for name in names if (m := Z_COLUMN.match(name)) and m["kind"] in kinds]


def named_bio_nuisance(names: Iterable[str]) -> bool:
    """Whether z columns among `names` carry the legacy bio/nuisance names (z_mu_n_07, z_mu_b_20)."""
    return any((m := Z_COLUMN.match(name)) and m["part"] for name in names)


__all__ = [
    "KINDS",
    "Z_COLUMN",
    "flat_name",
    "z_columns",
    "bio_nuisance_name",
    "flat_z_mu",
    "z_columns_in",
    "named_bio_nuisance",
]
