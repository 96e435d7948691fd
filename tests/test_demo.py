"""The demo data root: deterministic for a seed, shaped like the lab's, and never written over a user's folder."""

import polars as pl
import pytest

from morphlake.demo.data_root import DEMO_EXPERIMENTS, DemoSpec, make_demo_root
from morphlake.ingest.df02 import DF02_COLUMNS
from morphlake.ingest.errors import InputError
from morphlake.lake.data_root import DF02_RELPATH

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
    spec = DemoSpec(embryos=2, timepoints=2)
    make_demo_root(tmp_path / "a", spec, "m")
    frame = pl.read_csv(tmp_path / "a" / DF02_RELPATH, infer_schema=False)
    per_experiment = spec.embryos * spec.timepoints
    assert frame.height == per_experiment * spec.experiments
    assert frame["experiment_date"].unique(maintain_order=True).to_list() == [e for e, _, _ in DEMO_EXPERIMENTS]
    assert set(DF02_COLUMNS) <= set(frame.columns)
    # the other columns the lab's df02 has, beyond the ones morphlake requires (DF02_COLUMNS)
    assert [c for c in frame.columns if c not in DF02_COLUMNS] == [
        "length_um",
        "width_um",
        "xpos",
        "ypos",
        "dead_flag",
        "sa_outlier_flag",
        "bubble_flag",
        "focus_flag",
        "frame_flag",
        "no_yolk_flag",
        "master_perturbation",
        "genotype",
        "chem_perturbation",
        "microscope",
        "start_age_hpf",
        "Height (um)",
        "Width (um)",
    ]
    # Each experiment spells its flags its own way (True/False, 1/0, true/false), as the real files do.
    flags = frame.group_by("experiment_date").agg(pl.col("control_flag").unique().sort(), pl.col("use_embryo_flag"))
    assert sorted(flags.select("experiment_date", "control_flag").rows()) == [
        ("20240626", ["False", "True"]),
        ("20250305_24hpf_lmx1b", ["false", "true"]),
        ("20250612_30hpf_ctrl_atf6", ["0", "1"]),
    ]
    use = {exp: sorted(values) for exp, values in flags.select("experiment_date", "use_embryo_flag").rows()}
    # all usable but the second experiment's last embryo at its last time point
    assert use == {
        "20240626": ["1"] * per_experiment,
        "20250305_24hpf_lmx1b": ["True"] * per_experiment,
        "20250612_30hpf_ctrl_atf6": ["false"] + ["true"] * (per_experiment - 1),
    }


def test_demo_refuses_a_folder_it_did_not_make(tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "thesis.docx").write_text("precious")
    with pytest.raises(InputError, match="was not made by `morphlake demo`"):
        make_demo_root(tmp_path / "mine", SPEC, "m")
    assert (tmp_path / "mine" / "thesis.docx").read_text() == "precious"


def test_a_second_demo_with_the_same_settings_changes_nothing_and_says_so(cli, tmp_path):
    """The demo root is written beside the old one and moved in file by file: identical files keep their mtimes, so
    the second run's ingest, embed and build have nothing to do, and the build says `unchanged`."""
    args = ("demo", "--root", tmp_path / "d", "--lake", tmp_path / "l", "--embryos", "1", "--timepoints", "2")
    assert cli(*args).exit_code == 0
    before = {p: p.stat().st_mtime_ns for p in sorted((tmp_path / "d").rglob("*"))}
    again = cli(*args)
    assert again.exit_code == 0, again.output
    assert {p: p.stat().st_mtime_ns for p in sorted((tmp_path / "d").rglob("*"))} == before
    assert "build: unchanged (nothing changed since build " in again.output and "incremental" not in again.output
    assert "0 snip(s) embedded" in again.output


def test_a_demo_root_made_again_with_other_settings_holds_only_the_new_files(tmp_path):
    make_demo_root(tmp_path / "a", SPEC, "m")
    make_demo_root(tmp_path / "a", DemoSpec(seed=4, embryos=1, timepoints=1, experiments=2), "m")
    make_demo_root(tmp_path / "b", DemoSpec(seed=4, embryos=1, timepoints=1, experiments=2), "m")
    assert tree(tmp_path / "a") == tree(tmp_path / "b")
    assert not list((tmp_path / "a").rglob("*_t0001.jpg")) and not list(tmp_path.glob(".a-*"))


def test_the_try_lines_call_morphlake_as_it_was_called(tmp_path, monkeypatch):
    """`.venv/bin/morphlake demo` from a quick start that did not activate the venv: the printed commands say
    `.venv/bin/morphlake`, which works as written; where `morphlake` on PATH is this very script, just `morphlake`."""
    from morphlake.report.summary import command_name

    script = tmp_path / ".venv" / "bin" / "morphlake"
    script.parent.mkdir(parents=True)
    script.write_text("#!/bin/sh\n")
    script.chmod(0o755)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("sys.argv", [".venv/bin/morphlake", "demo"])
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    assert command_name() == ".venv/bin/morphlake"
    monkeypatch.setenv("PATH", f"{script.parent}:/usr/bin:/bin")
    assert command_name() == "morphlake"
    monkeypatch.setattr("sys.argv", ["/usr/lib/python3/pytest"])  # not the console script (tests, python -m)
    assert command_name() == "morphlake"
