"""One source for each lake schema: the registry (morphlake.lake.schemas) feeds the dbt project, and the two agree.

The dbt files rendered from it are committed (a plain `dbt build` needs no morphlake). When a schema changes,
regenerate them with

    .venv/bin/python -m morphlake.lake.dbt_files --write
"""

from __future__ import annotations

import re
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest
from plain_dbt import PROJECT, plain_dbt

from morphlake.common.dbt_macros import duckdb_columns
from morphlake.ingest.df02 import DF02_COLUMNS, DF02_SCHEMA
from morphlake.ingest.ledger import LEDGER_SCHEMA
from morphlake.lake import dbt_files, schemas
from morphlake.lake.embeddings_table import META_FIELDS, embeddings_schema
from morphlake.lake.layout import TABLES, Lake


def test_the_rendered_dbt_files_are_current():
    """What CI checks (`python -m morphlake.lake.dbt_files`): every rendered file equals the committed one."""
    assert dbt_files.stale(PROJECT) == [], "regenerate: .venv/bin/python -m morphlake.lake.dbt_files --write"
    assert dbt_files.main(["--project-dir", str(PROJECT)]) == 0


def test_the_render_command_finds_and_rewrites_a_stale_file(tmp_path, capsys):
    import shutil

    project = tmp_path / "dbt_project"
    shutil.copytree(PROJECT, project)
    sources = project / "models" / "staging" / "_lake__sources.yml"
    sources.write_text(sources.read_text().replace("Plate well", "Plate"))
    assert dbt_files.main(["--project-dir", str(project)]) == 1
    assert "_lake__sources.yml is out of date" in capsys.readouterr().err
    assert dbt_files.main(["--project-dir", str(project), "--write"]) == 0
    assert dbt_files.stale(project) == [] and "Plate well" in sources.read_text()
    assert dbt_files.main(["--project-dir", str(tmp_path)]) == 64  # not a dbt project: a usage error


def test_the_registry_is_the_lakes_tables():
    """Types stay with the code that writes them; the registry describes every one of their columns, and its
    files and partition keys are the lake's layout."""
    assert schemas.DF02.schema == DF02_SCHEMA and schemas.SNIPS.schema == LEDGER_SCHEMA
    assert schemas.EMBEDDINGS.schema == pa.schema(META_FIELDS)
    assert [t.name for t in schemas.LAKE_TABLES] == [t for t in TABLES if t != "df03_export"]
    lake = Lake.at("/lake")
    for table in schemas.LAKE_TABLES:
        assert all(c.description for c in table.columns), table.name
        part = lake.partition_file(table.name, **{key: "x" for key in table.partition_keys})
        assert part.match(table.files), (part, table.files)
    with pytest.raises(ValueError, match="describe each column once"):
        schemas.described(DF02_SCHEMA, {"snip_id": "the snip"})


def test_the_sources_file_declares_each_registered_table():
    import yaml

    declared = yaml.safe_load((PROJECT / "models" / "staging" / "_lake__sources.yml").read_text())
    tables = {t["name"]: t for t in declared["sources"][0]["tables"]}
    for table in schemas.LAKE_TABLES:
        assert tables[table.name]["meta"]["files"] == table.files
        assert [c["name"] for c in tables[table.name]["columns"]] == [c.name for c in table.columns]
    df03 = yaml.safe_load((PROJECT / "models" / "marts" / "df03.yml").read_text())["models"][0]
    documented = [c["name"] for c in df03["columns"]]
    assert documented[: len(DF02_SCHEMA)] == DF02_SCHEMA.names
    assert documented[len(DF02_SCHEMA) :] == [c.name for c in (*schemas.DF03_PROVENANCE, *schemas.DF03_Z)]


def test_df02_schema_is_the_declared_columns():
    assert DF02_SCHEMA.names == list(DF02_COLUMNS)
    assert set(duckdb_columns(DF02_SCHEMA).values()) <= {"varchar", "bigint", "double", "boolean"}


def test_the_dbt_project_reads_the_generated_macros_and_types_no_schema_by_hand():
    """Each schema is typed in one place: the staging models and df03's contract call the generated macros."""
    by_macro = {item.macro: item.schema for item in dbt_files.MACROS}
    readers = {  # file -> the generated macro it reads instead of typing those columns itself
        PROJECT / "models" / "staging" / "stg_df02.sql": "df02_columns",
        PROJECT / "models" / "staging" / "stg_train.sql": "train_columns",
        PROJECT / "models" / "marts" / "df03.yml": "df03_columns",
        PROJECT / "models" / "staging" / "stg_snips.sql": "ledger_columns",
        PROJECT / "macros" / "z_columns.sql": "embedding_meta_columns",
    }
    for path, macro in readers.items():
        text = path.read_text()
        assert f"{macro}()" in text, f"{path.name} does not call {macro}()"
        # a column typed by hand: its quoted name, a colon, a type (`'well': 'varchar'`, `"well": VARCHAR`)
        typed = [
            name
            for name in by_macro[macro].names
            if re.search(rf"""['"]{re.escape(name)}['"]\s*:\s*['"]?[A-Za-z]""", text)
        ]
        assert not typed, f"{path.name} types {macro}'s columns {typed} by hand"


def describe(con: duckdb.DuckDBPyConnection, relation: str) -> dict[str, str]:
    return {name: kind for name, kind, *_ in con.execute(f"describe {relation}").fetchall()}


def run_dbt(lake: Path, *args: str) -> None:
    out = plain_dbt(lake, *args)
    assert out.returncode == 0, out.stdout[-3000:]


@pytest.mark.parametrize("has_files", [True, False], ids=["lake_with_files", "empty_lake"])
def test_python_and_dbt_agree_on_the_staging_types(embedded_lake, tmp_path, has_files):
    """The staging views have the Python schemas' types, whether they read the lake's files or (no files yet)
    the generated macros' empty relations; df03's contract holds on the real data."""
    lake = embedded_lake if has_files else tmp_path / "empty-lake"
    lake.mkdir(exist_ok=True)
    if has_files:
        run_dbt(lake, "build", "--select", "stg_df02", "stg_snips", "stg_embeddings", "int_df03", "df03")
    else:  # df03's tests need rows to be meaningful; an empty lake is only read
        run_dbt(lake, "run", "--select", "stg_df02", "stg_snips", "stg_embeddings")
    dim = 100
    with duckdb.connect(str(lake / "warehouse.duckdb"), read_only=True) as con:
        df02 = describe(con, "stg_df02")
        snips = describe(con, "stg_snips")
        embeddings = describe(con, "stg_embeddings")
        if has_files:
            raw_ledger = describe(
                con, f"(select * from read_parquet('{lake}/raw/snips/*/*.parquet', hive_partitioning=false))"
            )
    # df02: the required columns first, with their types (a real df02 carries more after them)
    want = {k: v.upper() for k, v in duckdb_columns(DF02_SCHEMA).items()}
    assert list(df02)[: len(want)] == list(want) and {k: df02[k] for k in want} == want
    # the ledger: the files hold exactly LEDGER_SCHEMA; stg_snips renames some columns but keeps their types
    ledger = {k: v.upper() for k, v in duckdb_columns(LEDGER_SCHEMA).items()}
    if has_files:
        assert raw_ledger == ledger
    renamed = {"path": "image_path", "format": "image_format", "width": "image_width", "height": "image_height"}
    renamed |= {"mode": "image_mode", "file_size": "image_bytes", "fingerprint": "image_fingerprint"}
    assert snips == {renamed.get(k, k): v for k, v in ledger.items() if k != "mtime_ns"}
    # embeddings: the metadata columns, then D float z_mu and D z_sigma (at least the legacy 100 when empty)
    assert embeddings == {k: v.upper() for k, v in duckdb_columns(embeddings_schema(dim)).items()}


# The shared leaf (morphlake.common): one implementation each, the old names still importable.


@pytest.mark.parametrize("size", [0, 4, (1 << 20) + 7])  # empty, small, more than one read chunk
def test_the_ledger_and_the_reader_fingerprint_alike(tmp_path, size):
    from morphlake.common.fingerprint import fingerprint_bytes, fingerprint_file
    from morphlake.embed.reader import fingerprint
    from morphlake.ingest.ledger import file_fingerprint

    data = (b"snip" * (size // 4 + 1))[:size]
    path = tmp_path / "snip.jpg"
    path.write_bytes(data)
    assert fingerprint_file(path) == fingerprint_bytes(data) == file_fingerprint(path) == fingerprint(data)
    assert len(fingerprint_bytes(data)) == 32  # blake2b-128, hex


def test_the_fingerprint_is_blake2b_128_of_the_bytes():
    """Pinned: fingerprints already in lakes must keep matching the files they came from."""
    from morphlake.common.fingerprint import fingerprint_bytes

    assert fingerprint_bytes(b"") == "cae66941d9efbd404e4d88758ea67670"
    assert fingerprint_bytes(b"snip") == "96cd869e5f071e11c4796f196e3cb617"


def test_both_libraries_raise_hinted_errors():
    from morphlake.common.errors import HintedError
    from morphlake.common.skipped import Skipped
    from morphlake.embed.errors import EmbedError, EncoderFileError
    from morphlake.ingest import errors as ingest_errors

    for kind in (ingest_errors.InputError, EmbedError, EncoderFileError):
        assert issubclass(kind, HintedError)
        error = kind("the file is bad", "use a good one")
        assert str(error) == "the file is bad\n  hint: use a good one" and error.hint == "use a good one"
        assert str(kind("no hint")) == "no hint" and kind("no hint").hint == ""
    assert ingest_errors.Skipped is Skipped


def test_one_z_grammar():
    from morphlake.common import zcolumns
    from morphlake.embed import architecture
    from morphlake.ingest import latents

    assert latents.Z_COLUMN is zcolumns.Z_COLUMN and latents.z_columns is zcolumns.z_columns
    assert architecture.bio_nuisance_name is zcolumns.bio_nuisance_name
    assert zcolumns.z_columns(2) == ["z_mu_00", "z_mu_01", "z_sigma_00", "z_sigma_01"]
    names = [zcolumns.bio_nuisance_name(k, i, 20) for k in zcolumns.KINDS for i in (0, 19, 20, 99)]
    assert names == ["z_mu_n_00", "z_mu_n_19", "z_mu_b_20", "z_mu_b_99"] + [
        "z_sigma_n_00",
        "z_sigma_n_19",
        "z_sigma_b_20",
        "z_sigma_b_99",
    ]
    parsed = [zcolumns.Z_COLUMN.match(n) for n in ["z_mu_07", "z_sigma_b_20", "z_mu_x_01", "z_mu"]]
    assert [m and (m["kind"], m["part"], int(m["index"])) for m in parsed] == [
        ("mu", None, 7),
        ("sigma", "b", 20),
        None,
        None,
    ]


def test_z_columns_are_picked_out_by_the_one_grammar():
    """The lake's flat means in index order (a 100-wide model's z_mu_100 after z_mu_99), any naming by kind, and
    whether a schema is named bio/nuisance: the helpers the report, neighbours, ingest and the export share."""
    from morphlake.common import zcolumns

    names = ["snip_id", "z_mu_100", "z_mu_99", "z_mu_n_00", "z_sigma_00", "z_mu_x_01", "z_naming", "z_mu_02"]
    assert zcolumns.flat_z_mu(names) == ["z_mu_02", "z_mu_99", "z_mu_100"]
    assert zcolumns.z_columns_in(names) == ["z_mu_100", "z_mu_99", "z_mu_n_00", "z_sigma_00", "z_mu_02"]
    assert zcolumns.z_columns_in(names, kinds=("sigma",)) == ["z_sigma_00"]
    assert zcolumns.named_bio_nuisance(["z_mu_b_00"]) and not zcolumns.named_bio_nuisance(["z_mu_00", "z_naming"])
