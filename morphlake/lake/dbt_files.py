"""The dbt project's files rendered from the lake's registry: `python -m morphlake.lake.dbt_files [--write]`.

Rendered (committed, so a plain `dbt build` needs no morphlake): macros/schemas.sql (each table's {column: type}),
macros/coverage.sql, macros/latent_width.sql, macros/file_shapes.sql and macros/z_names.sql (the one coverage query,
latent-width rule, one-shape rule and z-column grammar), models/staging/_lake__sources.yml (the lake's tables, their
files and column docs) and models/marts/df03.yml (df03's docs and column contract). Without --write the command says
which files are out of date and exits 1; CI runs it (.ci/rules).
"""

from __future__ import annotations

import argparse
import json
import sys
import textwrap
from collections.abc import Iterable
from pathlib import Path

import pyarrow as pa

from morphlake.common import coverage, dbt_macros, file_shapes, latent_width, zcolumns
from morphlake.common.dbt_macros import MacroSchema
from morphlake.common.generated import RENDER_COMMAND, banner
from morphlake.lake.schemas import DF02, DF03_PROVENANCE, DF03_Z, EMBEDDINGS, LAKE_TABLES, SNIPS, TRAIN, Column

WIDTH = 120
# words YAML 1.1 (dbt's reader) takes for a bool or a null, so a column of that name is written quoted
YAML_WORDS = {"y", "n", "yes", "no", "on", "off", "true", "false", "null", "none"}
YAML_HEADER = "".join(f"# {line}\n" for line in textwrap.wrap(banner("morphlake.lake.schemas"), WIDTH - 2))

MACROS = [
    MacroSchema(
        macro="df02_columns",
        about="df02's required columns as ingest writes them (morphlake.ingest.df02.DF02_SCHEMA); df02 keeps every "
        "other column of its CSV besides. stg_df02's empty relation.",
        schema=DF02.schema,
    ),
    MacroSchema(
        macro="train_columns",
        about="The training sets' required columns (raw/train). stg_train's empty relation.",
        schema=TRAIN.schema,
    ),
    MacroSchema(
        macro="ledger_columns",
        about="The snip-image ledger, raw/snips (morphlake.ingest.ledger.LEDGER_SCHEMA). stg_snips' empty relation.",
        schema=SNIPS.schema,
    ),
    MacroSchema(
        macro="embedding_meta_columns",
        about="The embeddings' columns before their z columns (morphlake.lake.embeddings_table.META_FIELDS); "
        "embedding_columns() (macros/z_columns.sql) adds the float z columns.",
        schema=EMBEDDINGS.schema,
    ),
    MacroSchema(
        macro="df03_columns",
        about="df03's columns before its z columns: df02's required ones, then the embedding's provenance "
        "(morphlake.lake.schemas.DF03_PROVENANCE). df03's column contract.",
        schema=pa.schema([(c.name, c.type) for c in DF03_PROVENANCE]),
        extends="df02_columns",
    ),
]

DF03_MODEL = """\
version: 2
models:
  - name: df03
    description: >
      Grain: one row per df02 snip_id with an embedding of var model_name, whatever its use_embryo_flag (the
      legacy step's pd.merge(df02, latents, on="snip_id", how="inner"); filter on use_embryo_flag for the
      usable rows), joined on snip_id and experiment_date as df03_coverage counts. As the last morphlake build
      published it: a view over the df03 Parquet export (<lake>/exports/df03), which holds int_df03 as it was
      then; before any morphlake build, int_df03 itself. df02's columns in their order (every column of the
      lab's df02, the required ones below), then the embedding's provenance, then D z_mu columns named by var
      z_schema, then z_mu as FLOAT[D]; D is the model's latent width (100 for the legacy model). The
      log-variances (z_sigma) are not in df03 or its export, as they were not in the legacy df03: they are in
      df03_z_sigma, joined on snip_id, experiment_date and embedding_run_id.
    data_tests:
      - column_contract:
          name: df03_column_contract
          arguments:
            # df02's required columns, then the provenance (df03_columns(): generated with this file)
            including: "{{ df03_columns() }}"
            columns:
              "z_mu": "FLOAT[{{ latent_dim() }}]"
      - finite_values:
          arguments:
            prefix: z_
          config:
            where: "{{ var('in_build_scope') }}"
"""
# A column's tests, under its generated entry.
DF03_COLUMN_TESTS = {
    "snip_id": """\
data_tests:
  - unique_within  # the changed experiments' snip_ids against every row (all of them in a full build)
  - not_null:
      config:
        where: "{{ var('in_build_scope') }}"
""",
}


def _string(key: str, text: str, *, indent: int) -> list[str]:
    """`key: "text"` on one line when it fits, else a folded block wrapped at WIDTH."""
    pad = " " * indent
    line = f"{pad}{key}: {json.dumps(text, ensure_ascii=False)}"
    if len(line) <= WIDTH:
        return [line]
    wrapped = textwrap.wrap(text, WIDTH - indent - 2, break_long_words=False, break_on_hyphens=False)
    return [f"{pad}{key}: >-", *(f"{pad}  {part}" for part in wrapped)]


def _columns(columns: Iterable[Column], *, indent: int, tests: dict[str, str] | None = None) -> list[str]:
    pad = " " * indent
    lines = []
    for column in columns:
        plain = column.name.isidentifier() and column.name.lower() not in YAML_WORDS
        name = column.name if plain else json.dumps(column.name, ensure_ascii=False)
        lines.append(f"{pad}- name: {name}")
        lines += _string("description", column.description, indent=indent + 2)
        if tests and column.name in tests:
            lines += [f"{pad}  {line}" for line in tests[column.name].splitlines()]
    return lines


def sources_yml() -> str:
    """models/staging/_lake__sources.yml: the lake's tables, their files (meta.files) and column docs."""
    lines = [
        YAML_HEADER.rstrip("\n"),
        "# The lake's tables, as morphlake ingest and embed publish them: Hive-partitioned Parquet under the lake root",
        "# (meta.files, relative to it). The staging models read them with lake_source(), which also stands in an",
        "# empty, typed relation (macros/schemas.sql) while a table has no files yet.",
        "version: 2",
        "sources:",
        "  - name: lake",
        "    description: The morphlake lake's Parquet tables (DESIGN §2); one file per partition, experiment_date a "
        "string.",
        "    tables:",
    ]
    for table in LAKE_TABLES:
        lines.append(f"      - name: {table.name}")
        lines += _string("description", table.description, indent=8)
        keys = ", ".join(table.partition_keys)
        lines.append(f"        meta: {{files: {json.dumps(table.files)}, partition_keys: [{keys}]}}")
        lines.append("        columns:")
        lines += _columns(table.columns, indent=10)
    return "\n".join(lines) + "\n"


def df03_yml() -> str:
    """models/marts/df03.yml: df03's doc, its contract (df03_columns()) and every column's doc."""
    columns = [*DF02.columns, *DF03_PROVENANCE, *DF03_Z]
    lines = ["    columns:", *_columns(columns, indent=6, tests=DF03_COLUMN_TESTS)]
    return YAML_HEADER + DF03_MODEL + "\n".join(lines) + "\n"


def schemas_sql() -> str:
    return dbt_macros.render(MACROS, banner("morphlake's lake registry (morphlake.lake.schemas)"))


def rendered() -> dict[str, str]:
    """Each rendered file's text, by its path in the dbt project."""
    return {
        "macros/schemas.sql": schemas_sql(),
        "macros/coverage.sql": coverage.dbt_macro(),
        "macros/latent_width.sql": latent_width.dbt_macro(),
        "macros/file_shapes.sql": file_shapes.dbt_macro(),
        "macros/z_names.sql": zcolumns.dbt_macro(),
        "models/staging/_lake__sources.yml": sources_yml(),
        "models/marts/df03.yml": df03_yml(),
    }


def stale(project: Path) -> list[str]:
    """The rendered files whose committed text differs (or that are missing)."""
    return [
        name
        for name, text in rendered().items()
        if not (project / name).is_file() or (project / name).read_text(encoding="utf-8") != text
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m morphlake.lake.dbt_files", description=__doc__.splitlines()[0])
    parser.add_argument("--project-dir", type=Path, default=Path("dbt_project"), help="default: ./dbt_project")
    parser.add_argument("--write", action="store_true", help="write the files that are out of date")
    args = parser.parse_args(argv)
    project: Path = args.project_dir
    if not (project / "dbt_project.yml").is_file():
        print(f"{project} is not a dbt project (no dbt_project.yml); give --project-dir", file=sys.stderr)
        return 64
    out_of_date = stale(project)
    if args.write:
        texts = rendered()
        for name in out_of_date:
            dbt_macros.write(project / name, texts[name])
            print(f"wrote {project / name}")
        return 0
    for name in out_of_date:
        print(f"{project / name} is out of date with morphlake.lake.schemas; run `{RENDER_COMMAND}`", file=sys.stderr)
    return 1 if out_of_date else 0


if __name__ == "__main__":
    sys.exit(main())
