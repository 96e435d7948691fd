"""Unit tests: snip_id grammar, stem normalisation, safe path segments."""

import pytest

from morphlake.ingest.errors import InputError
from morphlake.ingest.naming import check_segment, is_safe_segment, normalise_stem, parse_snip_id


@pytest.mark.parametrize(
    "name, expected",
    [
        ("20240626_C12_e01_t0012.jpg", "20240626_C12_e01_t0012"),
        ("/a/b/20240626_C12_e01_s0012.png", "20240626_C12_e01_t0012"),
        ("20250612_30hpf_ctrl_atf6_C12_e01_t0000.JPG", "20250612_30hpf_ctrl_atf6_C12_e01_t0000"),
        ("20240626_C12_e01_t0012", "20240626_C12_e01_t0012"),
    ],
)
def test_normalise_stem(name, expected):
    assert normalise_stem(name) == expected


def test_parse_snip_id_splits_experiment_well_embryo_time():
    parsed = parse_snip_id("20250612_30hpf_ctrl_atf6_C12_e01_t0000")
    assert parsed == {
        "embryo_id": "20250612_30hpf_ctrl_atf6_C12_e01",
        "experiment": "20250612_30hpf_ctrl_atf6",
        "well": "C12",
        "time": "0000",
    }
    assert parse_snip_id("20240626_A01_e03_t0123")["experiment"] == "20240626"
    assert parse_snip_id("not_a_snip") is None


@pytest.mark.parametrize("bad", ["..", "a/b", "exp=1", "with space", "ünïcode", "", ".hidden", "a..b", "-x"])
def test_unsafe_segments_are_rejected_with_the_allowed_characters(bad):
    assert not is_safe_segment(bad)
    with pytest.raises(InputError, match="cannot be used as a lake partition name") as info:
        check_segment("experiment_date", bad)
    assert "ASCII letters, digits" in str(info.value)


@pytest.mark.parametrize("good", ["20240626", "20250612_30hpf_ctrl_atf6", "exp-1.v2"])
def test_safe_segments_pass(good):
    assert check_segment("experiment_date", good) == good


@pytest.mark.parametrize(
    "name",
    [
        "20240626_C12_e01_t0012.jpg",
        "20240626_C12_e01_s0012.png",
        "x_A01_e01_s0001.JPEG",
        "20240626_C12_e01_t0012",
        "plain",
    ],
)
def test_polars_normalisation_matches_python(name):
    import polars as pl

    from morphlake.ingest.naming import normalise_stem_expr

    assert pl.DataFrame({"s": [name]}).select(normalise_stem_expr("s"))["s"][0] == normalise_stem(name)
