"""Property tests (hypothesis): snip ids and stems, df02 coercion, and the flat <-> bio/nuisance z naming."""

import math

import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from morphlake.embed.architecture import bio_nuisance_name
from morphlake.ingest.df02 import DF02_COLUMNS, read_df02
from morphlake.ingest.latents import z_naming
from morphlake.ingest.naming import is_safe_segment, normalise_stem, normalise_stem_expr, parse_snip_id

SEGMENT = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_\-]{0,24}", fullmatch=True)
WELL = st.builds(lambda r, c: f"{r}{c:02d}", st.sampled_from("ABCDEFGH"), st.integers(1, 12))
SNIP = st.builds(
    lambda e, w, n, t: (e, w, n, t, f"{e}_{w}_e{n:02d}_t{t:04d}"),
    SEGMENT,
    WELL,
    st.integers(0, 99),
    st.integers(0, 9999),
)


@given(SNIP)
def test_snip_id_parses_back_into_its_parts(parts):
    experiment, well, embryo, time, snip_id = parts
    parsed = parse_snip_id(snip_id)
    assert parsed == {
        "embryo_id": f"{experiment}_{well}_e{embryo:02d}",
        "experiment": experiment,
        "well": well,
        "time": f"{time:04d}",
    }


@given(SNIP, st.sampled_from(["", ".jpg", ".JPG", ".jpeg", ".png", ".PNG"]), st.booleans())
def test_stem_normalisation(parts, extension, frame_suffix):
    snip_id = parts[-1]
    name = (snip_id[:-6] + "_s" + snip_id[-4:] if frame_suffix else snip_id) + extension
    assert normalise_stem(name) == snip_id
    assert normalise_stem(normalise_stem(name)) == snip_id  # idempotent
    assert pl.DataFrame({"s": [name]}).select(normalise_stem_expr("s"))["s"][0] == snip_id


@given(st.text(max_size=30))
def test_safe_segments_never_walk_out(text):
    if is_safe_segment(text):
        assert "/" not in text and ".." not in text and "=" not in text and not text.startswith(".")
        assert text.isascii() and " " not in text


FLAG_STYLES = [("True", "False"), ("1", "0"), ("true", "false"), ("yes", "no"), ("TRUE", "FALSE")]
ROW = st.fixed_dictionaries(
    {
        "time_int": st.integers(0, 5000),
        "Time Rel (s)": st.floats(0, 1e6, allow_nan=False),
        "predicted_stage_hpf": st.floats(0, 200, allow_nan=False),
        "surface_area_um": st.one_of(st.none(), st.floats(1, 1e7, allow_nan=False)),
        "control_flag": st.booleans(),
        "use_embryo_flag": st.booleans(),
        "temperature": st.floats(20, 35, allow_nan=False),
        "style": st.integers(0, len(FLAG_STYLES) - 1),
    }
)


@settings(max_examples=40, deadline=None)
@given(st.lists(ROW, min_size=1, max_size=8), st.sampled_from([",", ";", "\t"]))
def test_df02_coercion_round_trips_typed_values(tmp_path_factory, rows, separator):
    path = tmp_path_factory.mktemp("df02") / "df02.csv"
    header = list(DF02_COLUMNS)
    lines = [separator.join(header)]
    for i, r in enumerate(rows):
        flag = FLAG_STYLES[r["style"]]
        values = {
            "snip_id": f"20240626_A01_e01_t{i:04d}",
            "embryo_id": "20240626_A01_e01",
            "experiment_date": "20240626",
            "well": "A01",
            "short_pert_name": "wt",
            "phenotype": "wt",
            "medium": "E3",
            "time_int": str(r["time_int"]),
            "Time Rel (s)": repr(r["Time Rel (s)"]),
            "predicted_stage_hpf": repr(r["predicted_stage_hpf"]),
            "surface_area_um": "" if r["surface_area_um"] is None else repr(r["surface_area_um"]),
            "control_flag": flag[0] if r["control_flag"] else flag[1],
            "use_embryo_flag": flag[0] if r["use_embryo_flag"] else flag[1],
            "temperature": repr(r["temperature"]),
        }
        lines.append(separator.join(values[h] for h in header))
    path.write_text("\n".join(lines) + "\n")
    table, skipped = read_df02(path)
    assert skipped == []
    back = table.to_pylist()
    for r, got in zip(rows, back):
        assert got["time_int"] == r["time_int"]
        assert math.isclose(got["Time Rel (s)"], r["Time Rel (s)"])
        assert got["control_flag"] is r["control_flag"] and got["use_embryo_flag"] is r["use_embryo_flag"]
        assert (got["surface_area_um"] is None) == (r["surface_area_um"] is None)
        assert got["experiment_date"] == "20240626"


@given(st.integers(1, 300), st.floats(0, 1))
def test_flat_and_bio_nuisance_names_round_trip(dim, zn_frac):
    nuisance = math.floor(dim * zn_frac)
    legacy = [bio_nuisance_name(k, i, nuisance) for k in ("mu", "sigma") for i in range(dim)]
    style, got_dim, rename = z_naming(legacy, "store.csv")
    assert got_dim == dim and style == ("bio_nuisance")
    assert [rename[n] for n in legacy] == [f"z_{k}_{i:02d}" for k in ("mu", "sigma") for i in range(dim)]
    assert all(("_n_" in n) == (int(n.rsplit("_", 1)[1]) < nuisance) for n in legacy)
    flat = [f"z_{k}_{i:02d}" for k in ("mu", "sigma") for i in range(dim)]
    assert z_naming(flat, "store.csv") == ("flat", dim, {n: n for n in flat})
