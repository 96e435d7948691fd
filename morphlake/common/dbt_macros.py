"""Lake table schemas as dbt macros: each Arrow schema becomes a macro returning {column: DuckDB type}.

The dbt project reads the lake's tables with these types where no file exists yet (an empty relation) and
checks df03's columns against them, so the dbt side is written from the Python definitions, never by hand.
morphlake.lake.dbt_files renders the committed file (dbt_project/macros/schemas.sql) from the lake's registry.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import KW_ONLY, dataclass
from pathlib import Path

import pyarrow as pa

from morphlake.common.generated import jinja_comment

# Arrow type -> the name DuckDB gives it when it reads the Parquet files (lower case, as the models write them).
DUCKDB_TYPES = {
    pa.string(): "varchar",
    pa.large_string(): "varchar",
    pa.string_view(): "varchar",
    pa.bool_(): "boolean",
    pa.int8(): "tinyint",
    pa.int16(): "smallint",
    pa.int32(): "integer",
    pa.int64(): "bigint",
    pa.float32(): "float",
    pa.float64(): "double",
    pa.date32(): "date",
}


@dataclass(frozen=True)
class MacroSchema:
    """One macro of the generated file: its name, what it describes (a comment), and the Arrow schema; with
    `extends`, another macro's columns come first and `schema` adds its own after them."""

    macro: str
    about: str
    schema: pa.Schema
    _: KW_ONLY
    extends: str = ""


def duckdb_type(arrow_type: pa.DataType) -> str:
    """The DuckDB type name of an Arrow type; a type without one here is an error (add it to DUCKDB_TYPES)."""
    try:
        return DUCKDB_TYPES[arrow_type]
    except KeyError:
        raise ValueError(f"no DuckDB type is set for the Arrow type {arrow_type}; add it to DUCKDB_TYPES") from None


def duckdb_columns(schema: pa.Schema) -> dict[str, str]:
    """{column: DuckDB type} in the schema's order."""
    return {field.name: duckdb_type(field.type) for field in schema}


def render(macros: Iterable[MacroSchema], header: str) -> str:
    """The text of the generated macro file, under a comment holding `header` (what wrote it, how to redo it)."""
    parts = [jinja_comment(header)]
    for item in macros:
        entries = [
            f"      {json.dumps(name)}: {json.dumps(kind)}" for name, kind in duckdb_columns(item.schema).items()
        ]
        body = ",\n".join(entries)
        if item.extends:
            returned = (
                f"  {{%- set columns = {item.extends}() -%}}\n"
                f"  {{%- do columns.update({{\n{body}\n  }}) -%}}\n"
                f"  {{{{ return(columns) }}}}\n"
            )
        else:
            returned = f"  {{{{ return({{\n{body}\n  }}) }}}}\n"
        parts.append(f"{jinja_comment(item.about)}\n{{% macro {item.macro}() %}}\n{returned}{{% endmacro %}}")
    return "\n\n\n".join(parts) + "\n"


def write(path: Path, text: str) -> bool:
    """Write the file when its text differs; True when it changed."""
    path = Path(path)
    if path.is_file() and path.read_text(encoding="utf-8") == text:
        return False
    path.write_text(text, encoding="utf-8")
    return True


__all__ = ["DUCKDB_TYPES", "MacroSchema", "duckdb_type", "duckdb_columns", "render", "write"]
