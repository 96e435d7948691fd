"""The bad-input corpus, through the real CLI: every case gives a clear error naming the item in strict
mode, and a recorded skip (exit 2, listed in the partial manifest) with --allow-partial where skipping
makes sense; files that cannot be used at all fail in both modes. Never a traceback.

Image cases that fail at decode time (truncated, 16-bit, wrong size, bomb) are in
test_embed_cli.py::test_bad_snip_fails_strict_and_is_skipped_with_allow_partial;
image modes (converted or refused) in test_snip_modes.py.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import images
import polars as pl
import pytest

from morphlake import DEFAULT_MODEL_NAME
from morphlake.ingest.ledger import SNIP_SUBDIR
from morphlake.lake.data_root import DF02_RELPATH

EXP = "20240626"
STORE = Path("analysis/latent_embeddings/legacy") / DEFAULT_MODEL_NAME
TRAIN = Path("training_data/20241107_demo_train/embryo_metadata_df_train.csv")


def df02(root: Path) -> pl.DataFrame:
    return pl.read_csv(root / DF02_RELPATH, infer_schema=False)


def set_cell(root: Path, column: str, row: int, value: str) -> None:
    frame = df02(root)
    frame.with_columns(
        pl.when(pl.int_range(pl.len()) == row).then(pl.lit(value)).otherwise(pl.col(column)).alias(column)
    ).write_csv(root / DF02_RELPATH)


def rewrite_text(path: Path, change: Callable[[str], str]) -> None:
    path.write_bytes(change(path.read_bytes().decode()).encode())


def store_file(root: Path) -> Path:
    return root / STORE / f"morph_latents_{EXP}.csv"


def set_store_cell(root: Path, column: str, row: int, value: str) -> None:
    frame = pl.read_csv(store_file(root), infer_schema=False)
    frame.with_columns(
        pl.when(pl.int_range(pl.len()) == row).then(pl.lit(value)).otherwise(pl.col(column)).alias(column)
    ).write_csv(store_file(root))


def snip(root: Path, name: str = f"{EXP}_A08_e02_t0001") -> Path:
    return root / SNIP_SUBDIR / EXP / f"{name}.jpg"


@dataclass
class Case:
    name: str
    mutate: Callable[[Path], None]
    message: str  # in stderr in strict mode
    partial: str | None  # item named in the partial manifest; None: the input is unusable in both modes
    ok: bool = False  # an odd but valid input: both modes succeed


def _experiment_named(name: str) -> Callable[[Path], None]:
    return lambda root: set_cell(root, "experiment_date", 0, name)


CASES = [
    # df02 CSV
    Case(
        "bom_crlf_semicolon",
        lambda r: rewrite_text(r / DF02_RELPATH, lambda t: "\ufeff" + t.replace(",", ";").replace("\n", "\r\n")),
        "",
        None,
        ok=True,
    ),
    Case("quoted_newlines", lambda r: set_cell(r, "phenotype", 2, "wild\ntype, maybe"), "", None, ok=True),
    Case(
        "missing_column",
        lambda r: df02(r).drop("well").write_csv(r / DF02_RELPATH),
        "lacks required column(s): 'well'",
        None,
    ),
    Case(
        "duplicated_column",
        lambda r: rewrite_text(r / DF02_RELPATH, lambda t: t.replace("medium", "well", 1)),
        "duplicated column(s): 'well'",
        None,
    ),
    Case("empty_df02", lambda r: (r / DF02_RELPATH).write_bytes(b""), "is empty (0 bytes)", None),
    Case("header_only_df02", lambda r: df02(r).head(0).write_csv(r / DF02_RELPATH), "has a header but no rows", None),
    Case(
        "duplicate_snip_id",
        lambda r: pl.concat([df02(r), df02(r).slice(3, 1)]).write_csv(r / DF02_RELPATH),
        "snip_id appears more than once",
        f"{EXP}_A08_e02_t0000",
    ),
    Case(
        "wrong_type",
        lambda r: set_cell(r, "time_int", 1, "three"),
        "column 'time_int' has 'three', not an integer",
        f"{EXP}_A01_e01_t0001",
    ),
    Case(
        "bad_flag",
        lambda r: set_cell(r, "use_embryo_flag", 1, "perhaps"),
        "'perhaps', not a flag",
        f"{EXP}_A01_e01_t0001",
    ),
    # experiment names
    Case(
        "experiment_dotdot",
        _experiment_named(".."),
        "'..' cannot be used as a lake partition name",
        f"{EXP}_A01_e01_t0000",
    ),
    Case("experiment_slash", _experiment_named("2024/06"), "'2024/06' cannot be used", f"{EXP}_A01_e01_t0000"),
    Case("experiment_equals", _experiment_named("exp=1"), "'exp=1' cannot be used", f"{EXP}_A01_e01_t0000"),
    Case("experiment_space", _experiment_named("june 26"), "'june 26' cannot be used", f"{EXP}_A01_e01_t0000"),
    Case("experiment_unicode", _experiment_named("expé"), "'expé' cannot be used", f"{EXP}_A01_e01_t0000"),
    # latent store
    Case(
        "latent_nan",
        lambda r: set_store_cell(r, "z_mu_03", 1, "NaN"),
        "non-finite or unparsable z value(s) in z_mu_03",
        f"{EXP}_A01_e01_t0001",
    ),
    Case("latent_inf", lambda r: set_store_cell(r, "z_sigma_99", 2, "-inf"), "z_sigma_99", f"{EXP}_A01_e01_t0002"),
    Case("latent_blank", lambda r: set_store_cell(r, "z_mu_50", 0, ""), "z_mu_50", f"{EXP}_A01_e01_t0000"),
    Case("latent_text", lambda r: set_store_cell(r, "z_mu_50", 0, "oops"), "'oops'", f"{EXP}_A01_e01_t0000"),
    Case(
        "latent_duplicate",
        lambda r: pl.concat([pl.read_csv(store_file(r), infer_schema=False)] * 2).write_csv(store_file(r)),
        "appears more than once",
        f"{EXP}_A01_e01_t0000",
    ),
    Case(
        "latent_mixed_naming",
        lambda r: rewrite_text(store_file(r), lambda t: t.replace("z_mu_05", "z_mu_n_05", 1)),
        "mixes flat (z_mu_00) and bio/nuisance",
        EXP,
    ),
    Case(
        "latent_wrong_width",
        lambda r: (
            pl.read_csv(store_file(r), infer_schema=False)
            .drop([f"z_{k}_{i:02d}" for k in ("mu", "sigma") for i in range(64, 100)])
            .write_csv(store_file(r))
        ),
        "has 64 latent dims, the model has 100",
        EXP,
    ),
    Case("latent_empty", lambda r: store_file(r).write_bytes(b""), "is empty (0 bytes)", EXP),
    Case("train_empty", lambda r: (r / TRAIN).write_bytes(b""), "is empty (0 bytes)", "20241107_demo_train"),
    # snip files caught from their headers
    Case("zero_byte_snip", lambda r: images.zero_bytes(snip(r)), "is an empty file", f"{EXP}_A08_e02_t0001"),
    Case("text_named_jpg", lambda r: images.text_file(snip(r)), "is not a readable image", f"{EXP}_A08_e02_t0001"),
    Case("png_named_jpg", lambda r: images.png_named_jpg(snip(r)), "is a PNG file named .jpg", f"{EXP}_A08_e02_t0001"),
    Case(
        "bomb_header", lambda r: images.decompression_bomb(snip(r)), "is not a readable image", f"{EXP}_A08_e02_t0001"
    ),
]


def symlink_outside(root: Path) -> None:
    target = images.good_jpeg(root.parent / "elsewhere.jpg")
    snip(root).unlink()
    snip(root).symlink_to(target)


CASES.append(Case("symlink_outside_data_root", symlink_outside, "outside the data root", f"{EXP}_A08_e02_t0001"))


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_bad_input_strict_and_partial(case, cli, root, lake):
    case.mutate(root)
    strict = cli("ingest", "--root", root, "--lake", lake)
    assert "Traceback" not in strict.output
    if case.ok:
        assert strict.exit_code == 0, strict.output
        return
    assert strict.exit_code == 1, strict.output
    assert case.message in strict.stderr
    assert "hint:" in strict.stderr
    assert not list(lake.rglob("*.parquet"))  # nothing published by a failed run
    partial = cli("ingest", "--root", root, "--lake", lake, "--allow-partial")
    assert "Traceback" not in partial.output
    if case.partial is None:
        assert partial.exit_code == 1 and case.message in partial.stderr
        return
    assert partial.exit_code == 2, partial.output
    manifest = json.loads(next(lake.glob("runs/*.partial.json")).read_text())["skipped"]
    assert case.partial in {s["item"] for s in manifest}, manifest
    assert any(case.message in s["reason"] for s in manifest), manifest


@pytest.mark.parametrize("kind", ["corrupt", "no_metadata", "wrong_input"])
def test_bad_encoder_files_fail_clearly(kind, cli, ingested, tmp_path, encoder_path):
    import onnx

    path = tmp_path / f"{kind}.onnx"
    if kind == "corrupt":
        path.write_bytes(encoder_path.read_bytes()[:5000])
        message = "is not a loadable ONNX model"
    else:
        model = onnx.load(str(encoder_path))
        if kind == "no_metadata":
            del model.metadata_props[:]
            message = "lacks morphlake metadata"
        else:
            model.graph.input[0].type.tensor_type.elem_type = onnx.TensorProto.FLOAT
            message = "expected image tensor(uint8) [N, 1, 288, 128]"
        onnx.save(model, str(path))
    result = cli("embed", "--model", path, "--lake", ingested)
    assert result.exit_code == 1 and message in result.stderr and "Traceback" not in result.output
