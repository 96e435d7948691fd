"""The z-column grammar: flat names (z_mu_07, z_sigma_07) and the legacy bio/nuisance view of the same
index (z_mu_n_07 for the first nuisance dims, z_mu_b_20 for the rest), for a model of any width D."""

from __future__ import annotations

import re
from collections.abc import Iterable

from morphlake.common.generated import banner, jinja_comment

KINDS = ("mu", "sigma")  # the mean, and the log-variance (the legacy name)
# The names, as str.format templates (dbt's z_name() macro formats the same ones: macros/z_names.sql, rendered
# from here), and any z column name, flat or bio/nuisance, as a pattern: kind, optional part (n | b), index.
FLAT = "z_{kind}_{index:02d}"
PARTED = "z_{kind}_{part}_{index:02d}"  # part: n for the nuisance dims (the first ones), b for the rest
Z_COLUMN = re.compile(r"^z_(?P<kind>mu|sigma)_(?:(?P<part>[nb])_)?(?P<index>\d+)$")
FLAT_MU_SQL = "z_mu_[0-9]+"  # a flat mean's name, as a SQL regular expression (regexp_full_match)


def flat_name(kind: str, index: int) -> str:
    """z_mu_07: the lake's name of z index `index` of `kind` (mu or sigma)."""
    return FLAT.format(kind=kind, index=index)


def z_columns(dim: int) -> list[str]:
    """Flat z column names in lake order: all means, then all log-variances."""
    return [flat_name(kind, i) for kind in KINDS for i in range(dim)]


def bio_nuisance_name(kind: str, index: int, nuisance_dims: int) -> str:
    """Legacy name of flat z index: z_mu_n_00 for nuisance dims, z_mu_b_20 for the rest."""
    return PARTED.format(kind=kind, part="n" if index < nuisance_dims else "b", index=index)


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


def dbt_macro() -> str:
    """The names as the dbt macros z_name(kind, index, z_schema, nuisance) and flat_z_name(kind, index)
    (macros/z_names.sql): the same templates, formatted by Jinja's str.format."""
    header = jinja_comment(banner("morphlake.common.zcolumns (the one z-column grammar)"))
    return f"""{header}


{{#- z_mu_07: the lake's name of index 07 of kind mu (the mean) or sigma (the log-variance). -#}}
{{% macro flat_z_name(kind, index) %}}
  {{{{ return("{FLAT}".format(kind=kind, index=index)) }}}}
{{% endmacro %}}


{{#- The name of a z index under z_schema: flat (z_mu_07), or bio_nuisance (z_mu_n_07 for the first `nuisance`
    indices, z_mu_b_20 for the rest). -#}}
{{% macro z_name(kind, index, z_schema, nuisance) %}}
  {{%- if z_schema == 'bio_nuisance' -%}}
    {{{{ return("{PARTED}".format(kind=kind, part='n' if index < nuisance else 'b', index=index)) }}}}
  {{%- endif -%}}
  {{{{ return(flat_z_name(kind, index)) }}}}
{{% endmacro %}}
"""


__all__ = [
    "FLAT",
    "PARTED",
    "FLAT_MU_SQL",
    "dbt_macro",
    "KINDS",
    "Z_COLUMN",
    "flat_name",
    "z_columns",
    "bio_nuisance_name",
    "flat_z_mu",
    "z_columns_in",
    "named_bio_nuisance",
]
