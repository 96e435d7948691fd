"""Unit tests: reading df02 and training metadata into typed tables, and every validation error."""

from pathlib import Path

import pyarrow as pa
import pytest

from morphlake.ingest.df02 import DF02_COLUMNS, read_df02, read_train
from morphlake.ingest.errors import InputError

HEADER = list(DF02_COLUMNS) + ["extra_count", "extra_ratio", "qc_flag", "note_id"]


def row(snip="20240626_A01_e01_t0000", exp="20240626", **over):
    values = {
        "snip_id": snip,
        "embryo_id": snip.rsplit("_t", 1)[0],
        "experiment_date": exp,
        "well": "A01",
        "time_int": "0",
        "Time Rel (s)": "0.5",
        "predicted_stage_hpf": "24.1",
        "surface_area_um": "1e5",
        "short_pert_name": "wt",
        "phenotype": "wt",
        "control_flag": "True",
        "temperature": "28.5",
        "medium": "E3",
        "use_embryo_flag": "1",
        "extra_count": "3",
        "extra_ratio": "0.5",
        "qc_flag": "yes",
        "note_id": "0012",
    }
    values.update(over)
    return [values[h] for h in HEADER]


def write(path: Path, rows, header=HEADER, sep=",", newline="\n", bom=False) -> Path:
    text = newline.join(sep.join(f'"{v}"' if (sep in v or "\n" in v) else v for v in r) for r in [header, *rows])
    path.write_bytes((("\ufeff" if bom else "") + text + newline).encode())
    return path


def test_types_flags_and_extra_columns(tmp_path):
    rows = [row(), row("20240626_A01_e01_t0001", time_int="1", control_flag="0", use_embryo_flag="false")]
    table, skipped = read_df02(write(tmp_path / "df02.csv", rows))
    assert skipped == []
    schema = table.schema
    assert schema.field("experiment_date").type in (pa.string(), pa.large_string())
    assert schema.field("time_int").type == pa.int64()
    assert schema.field("control_flag").type == pa.bool_()
    assert schema.field("extra_count").type == pa.int64()
    assert schema.field("extra_ratio").type == pa.float64()
    assert schema.field("qc_flag").type == pa.bool_()
    assert schema.field("note_id").type in (pa.string(), pa.large_string())  # ids keep leading zeros
    assert table["note_id"].to_pylist() == ["0012", "0012"]
    assert table["control_flag"].to_pylist() == [True, False]
    assert table["use_embryo_flag"].to_pylist() == [True, False]
    assert table.column_names == HEADER


@pytest.mark.parametrize("sep, newline, bom", [(";", "\r\n", True), (",", "\r\n", False), ("\t", "\n", True)])
def test_bom_crlf_and_separators(tmp_path, sep, newline, bom):
    table, skipped = read_df02(
        write(tmp_path / "df02.csv", [row(phenotype="two\nlines")], sep=sep, newline=newline, bom=bom)
    )
    assert skipped == [] and table.num_rows == 1
    assert table["snip_id"][0].as_py() == "20240626_A01_e01_t0000"
    assert table["phenotype"][0].as_py() == "two\nlines"
    assert table["use_embryo_flag"][0].as_py() is True


def test_all_digit_experiment_stays_a_string(tmp_path):
    table, _ = read_df02(write(tmp_path / "df02.csv", [row()]))
    assert table["experiment_date"].to_pylist() == ["20240626"]


def test_missing_required_columns(tmp_path):
    header = [h for h in HEADER if h not in ("well", "use_embryo_flag")]
    path = write(tmp_path / "df02.csv", [], header=header)
    with pytest.raises(InputError, match=r"lacks required column\(s\): 'well', 'use_embryo_flag'"):
        read_df02(path)


def test_duplicated_columns(tmp_path):
    path = write(tmp_path / "df02.csv", [row() + ["x"]], header=HEADER + ["well"])
    with pytest.raises(InputError, match="duplicated column"):
        read_df02(path)


@pytest.mark.parametrize(
    "content, message",
    [(b"", "is empty"), (b"\n\n", "is empty"), (",".join(HEADER).encode() + b"\n", "has a header but no rows")],
)
def test_empty_files(tmp_path, content, message):
    path = tmp_path / "df02.csv"
    path.write_bytes(content)
    with pytest.raises(InputError, match=message):
        read_df02(path)


def test_bad_rows_are_reported_by_snip_and_row(tmp_path):
    rows = [
        row(),
        row("20240626_A01_e01_t0001", time_int="abc"),
        row("20240626_A01_e01_t0002", use_embryo_flag="maybe"),
        row("20240626_A01_e01_t0003", predicted_stage_hpf="24h"),
        row("20240626_A01_e01_t0004"),
        row("20240626_A01_e01_t0004"),
        row("../evil_A01_e01_t0000", exp="../evil"),
    ]
    table, skipped = read_df02(write(tmp_path / "df02.csv", rows))
    assert table["snip_id"].to_pylist() == ["20240626_A01_e01_t0000"]
    reasons = {s.item: s.reason for s in skipped}
    assert "column 'time_int' has 'abc', not an integer" in reasons["20240626_A01_e01_t0001"]
    assert "'maybe', not a flag" in reasons["20240626_A01_e01_t0002"]
    assert "'24h', not a number" in reasons["20240626_A01_e01_t0003"]
    assert "snip_id appears more than once" in reasons["20240626_A01_e01_t0004"]
    assert "cannot be used as a lake partition name" in reasons["../evil_A01_e01_t0000"]
    assert all("data row" in s.where for s in skipped)
    assert len(skipped) == 6


def test_experiment_filter_and_unknown_experiment(tmp_path):
    path = write(tmp_path / "df02.csv", [row(), row("20250101_A01_e01_t0000", exp="20250101")])
    table, _ = read_df02(path, ["20250101"])
    assert table["experiment_date"].to_pylist() == ["20250101"]
    with pytest.raises(InputError, match="not in df02.*nope") as info:
        read_df02(path, ["nope"])
    assert "choose from: 20240626, 20250101" in str(info.value)


def test_train_metadata_gets_its_name(tmp_path):
    path = tmp_path / "train.csv"
    path.write_text("snip_id,stage\n20240626_A01_e01_t0000,24.5\n")
    table, skipped = read_train(path, "t1")
    assert skipped == [] and table["train_name"].to_pylist() == ["t1"]
    with pytest.raises(InputError, match="training set name"):
        read_train(path, "bad name")
