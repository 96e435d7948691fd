"""The demo data root: deterministic for a seed, shaped like the lab's, and never written over a user's folder."""

import polars as pl
import pytest

from morphlake.demo.data_root import DemoSpec, make_demo_root
from morphlake.ingest.errors import InputError
from morphlake.steps.ingest_step import DF02_RELPATH

SPEC = DemoSpec(seed=3, embryos=1, timepoints=2, experiments=2)


def tree(root):
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_same_seed_same_files_other_seed_other_files(tmp_path):
    make_demo_root(tmp_path / "a", SPEC, "m")
    make_demo_root(tmp_path / "b", SPEC, "m")
    make_demo_root(tmp_path / "c", DemoSpec(seed=4, embryos=1, timepoints=2, experiments=2), "m")
    a, b, c = tree(tmp_path / "a"), tree(tmp_path / "b"), tree(tmp_path / "c")
    assert a == b
    assert a.keys() == c.keys() and a[str(DF02_RELPATH)] != c[str(DF02_RELPATH)]


def test_demo_df02_has_mixed_flags_and_extra_columns(tmp_path):
    make_demo_root(tmp_path / "a", DemoSpec(embryos=2, timepoints=2), "m")
    frame = pl.read_csv(tmp_path / "a" / DF02_RELPATH, infer_schema=False)
    assert frame.width > 25
    flags = set(frame["use_embryo_flag"]) | set(frame["control_flag"])
    assert {"True", "1", "true"} & flags and len(flags) >= 4
    assert "20240626" in set(frame["experiment_date"])


def test_demo_refuses_a_folder_it_did_not_make(tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "thesis.docx").write_text("precious")
    with pytest.raises(InputError, match="was not made by `morphlake demo`"):
        make_demo_root(tmp_path / "mine", SPEC, "m")
    assert (tmp_path / "mine" / "thesis.docx").read_text() == "precious"
