"""build06's legacy files: the checks before any file, then the store files, the legacy CSVs, the partial manifest
and the sidecar (last: it says the others are complete), written from the warehouse by one object."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import KW_ONLY, dataclass
from pathlib import Path

import duckdb
import pyarrow as pa

from morphlake import __version__
from morphlake.common.progress import step_progress
from morphlake.errors import MorphlakeError, PartialResult
from morphlake.ingest.errors import Skipped
from morphlake.ingest.latents import list_latent_files
from morphlake.lake.faults import crash_point
from morphlake.lake.files import write_atomic
from morphlake.lake.runs import RunRecord, write_json_atomic
from morphlake.legacy.outputs import (
    coverage_sql,
    df03_sql,
    git_commit,
    missing_sql,
    non_finite_count,
    register_legacy_rows,
    train_sql,
    write_csv_atomic,
    z_mu_columns_of,
)
from morphlake.legacy.plan import Build06Options, Plan
from morphlake.legacy.store import completed_store, store_naming, store_sql
from morphlake.report.summary import coverage_text

COVERAGE_WARNING = 0.95
GENERATE_HINT = "pass --generate-missing-latents to embed them, or --allow-partial to write what exists"
NO_IMAGE_HINT = (
    "they have no readable snip to embed (training_data/bf_embryo_snips/<experiment>/ under the data root): "
    "restore the images, or pass --allow-partial to write what exists (exit 2, listed beside df03)"
)


@dataclass(frozen=True)
class Checked:
    """What the checks found before any file is written."""

    coverage: dict
    df03_rows: int
    missing: list[Skipped]  # df02 rows still without latents
    _: KW_ONLY
    generated: list[str]  # experiments whose new store file is written
    filled: dict[str, list[str]]  # experiment -> the snips its store file lacked that df03 now has


class LegacyWriter:
    """The legacy files of one build06 run, from the warehouse connection `con`: `check` first (raises before
    any file when the run cannot be written as asked), then `write`."""

    def __init__(
        self,
        con: duckdb.DuckDBPyConnection,
        *,
        plan: Plan,
        opts: Build06Options,
        record: RunRecord,
        echo: Callable[[str], None],
        encoder_sha256: str | None,
    ):
        self.con, self.plan, self.opts, self.record, self.echo = con, plan, opts, record, echo
        self.encoder_sha256 = encoder_sha256
        self.outputs: dict[str, int] = {}
        # temporaries go to the run's staging in the lake (swept by the next run), not into the user's folders
        self.scratch = opts.lake.staging_dir / record.run_id

    def check(self, skipped: list[Skipped]) -> tuple[Checked, list[Skipped]]:
        """Coverage, the rows still without latents and finiteness, given what the run has skipped so far; returns
        the findings and the items to skip besides (nothing is added to `skipped`)."""
        con, plan, opts = self.con, self.plan, self.opts
        con.register("df02_order", plan.df02_order)
        generated, unwritable = store_files_to_write(con, plan)
        filled = filled_gaps(con, plan, self.encoder_sha256) if opts.generate_missing_latents else {}
        register_legacy_rows(
            con,
            order=plan.df02_order,
            stored=plan.stored,
            generated=generated,
            filled=[(snip, exp) for exp, snips in filled.items() for snip in snips],
            train_order=plan.train_order,
        )
        coverage, df03_rows = report_coverage(con, self.echo)
        missing = still_missing(con)
        if missing and not opts.allow_partial:
            hint = NO_IMAGE_HINT if opts.generate_missing_latents else GENERATE_HINT
            raise MorphlakeError(PartialResult.listing(missing, "df02 rows without latents"), hint, skipped=missing)
        if df03_rows == 0:
            raise MorphlakeError(
                "no df02 row has latents of the model, so df03 would be empty; nothing was written",
                GENERATE_HINT.replace(", or --allow-partial to write what exists", ""),
            )
        if (skipped or unwritable) and not opts.allow_partial:  # e.g. a store file that cannot be written whole
            raise PartialResult([*skipped, *unwritable], "items")
        listed = {s.item for s in [*skipped, *unwritable]} | set(plan.experiments_without_latents)
        more = unwritable + [m for m in missing if m.item not in listed and m.where not in listed]
        bad = non_finite_count(con)
        if bad:
            raise MorphlakeError(
                f"df03 has {bad} row(s) with non-finite z values; no legacy file was written",
                "find them with the dbt test finite_values_df03_z_ and re-embed or fix the store",
            )
        return Checked(coverage, df03_rows, missing, generated=generated, filled=filled), more

    def write(self, checked: Checked, *, skipped: list[Skipped]) -> dict[str, int]:
        """Every legacy file, the partial manifest when `skipped` has items, and the sidecar; returns the rows of
        each file written."""
        # an earlier run's sidecar and manifest (there only with --overwrite) must not outlive a crash below
        self.plan.outputs.sidecar.unlink(missing_ok=True)
        self.plan.outputs.partial_manifest.unlink(missing_ok=True)
        completed = {e: p for e, p in self.plan.outputs.completed.items() if checked.filled.get(e)}
        with step_progress("build06: legacy files", self._file_count(checked, completed), unit="files") as progress:
            self._store_files(checked.generated, progress)
            self._completed_stores(completed, checked.filled, progress)
            self._csv(df03_sql(self.con, self.plan.experiments, columns=self.plan.df02_columns), self.plan.outputs.df03)
            progress.advance()
            crash_point("csv")
            self._train_csv(progress)
            for exp, target in self.plan.outputs.copies.items():
                self._csv(df03_sql(self.con, [exp], columns=self.plan.df02_columns), target)
                progress.advance()
                crash_point("csv")
        counts = self._counts(checked)
        generation = self._generation(checked)
        if skipped:
            self._manifest(checked, skipped=skipped, counts=counts, generation=generation)
        self._sidecar(checked, skipped=skipped, counts=counts, generation=generation)
        self._announce(checked, completed=completed, skipped=skipped)
        return self.outputs

    def _file_count(self, checked: Checked, completed: dict[str, Path]) -> int:
        train = bool(self.plan.outputs.train and self.plan.train_order is not None)
        return len(checked.generated) + len(completed) + 1 + train + len(self.plan.outputs.copies)

    def _csv(self, sql_params: tuple[str, list], target: Path) -> None:
        self.outputs[str(target)] = write_csv_atomic(
            self.con, *sql_params, path=target, replace=self.opts.overwrite, scratch=self.scratch
        )

    def _store_files(self, experiments: list[str], progress) -> None:
        """New store files, for experiments that had none."""
        _, nuisance = store_naming(list(list_latent_files(self.opts.data_root, self.opts.model_name).values()))
        dim = len(z_mu_columns_of(self.con, "df03"))
        for exp in experiments:
            sql = store_sql(self.con, model_name=self.opts.model_name, experiment=exp, nuisance=nuisance, dim=dim)
            self._csv(sql, self.plan.outputs.store[exp])
            progress.advance()
            crash_point("csv")

    def _completed_stores(self, completed: dict[str, Path], filled: dict[str, list[str]], progress) -> None:
        """Existing store files with their gaps filled: the file's bytes kept, the generated rows after them."""
        for exp, target in completed.items():
            data, self.outputs[str(target)] = completed_store(
                self.con, target, model_name=self.opts.model_name, experiment=exp, snips=filled[exp]
            )
            write_atomic(target, data, scratch=self.scratch)
            progress.advance()
            crash_point("csv")

    def _train_csv(self, progress) -> None:
        target = self.plan.outputs.train
        if not target:
            return
        assert self.opts.train_name is not None  # plan_outputs sets outputs.train from it
        if self.plan.train_order is None:
            train_csv = self.opts.dirs.train_csv(self.opts.train_name)
            self.echo(f"  note: no training metadata {train_csv}; {target.name} not written")
            return
        self._csv(train_sql(self.con, self.opts.train_name, columns=self.plan.train_columns), target)
        progress.advance()

    def _counts(self, checked: Checked) -> dict[str, int]:
        processed = sum(self.plan.rows.values())
        return {"processed": processed, "succeeded": checked.df03_rows, "skipped": processed - checked.df03_rows}

    def _generation(self, checked: Checked) -> dict | None:
        if not self.opts.generate_missing_latents:
            return None
        return generated_latents(self.plan, checked.filled, self.encoder_sha256)

    def _manifest(self, checked: Checked, *, skipped: list[Skipped], counts: dict, generation: dict | None) -> None:
        write_json_atomic(
            self.plan.outputs.partial_manifest,
            {
                "run_id": self.record.run_id,
                "command": "build06",
                "output": str(self.plan.outputs.df03),
                "counts": counts,
                "skipped_snip_ids": [m.item for m in checked.missing],
                "skipped": [s.to_dict() for s in skipped],
                **({"generated_latents": generation} if generation else {}),
            },
            scratch=self.scratch,
        )

    def _sidecar(self, checked: Checked, *, skipped: list[Skipped], counts: dict, generation: dict | None) -> None:
        opts = self.opts
        shas = self.con.sql("select distinct model_sha256 from legacy_rows where model_sha256 is not null").fetchall()
        write_json_atomic(
            self.plan.outputs.sidecar,
            {
                "written": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                "run_id": self.record.run_id,
                "outcome": "partial" if skipped else "complete",
                "counts": counts,
                "partial_manifest": str(self.plan.outputs.partial_manifest) if skipped else None,
                "model_name": opts.model_name,
                "model_sha256": [r[0] for r in shas],
                "encoder": self.record.data.get("encoder"),
                "root": str(opts.root),
                "data_root": str(opts.data_root),
                "lake": str(opts.lake.root),
                "morphlake_version": __version__,
                "git_commit": git_commit(),
                "parameters": self.record.data["params"],
                "coverage": checked.coverage,
                "outputs": self.outputs,
                **({"generated_latents": generation} if generation else {}),
            },
            scratch=self.scratch,
        )

    def _announce(self, checked: Checked, *, completed: dict[str, Path], skipped: list[Skipped]) -> None:
        for exp, snips in checked.filled.items():
            store = self.plan.latent_files[exp]
            where = f"appended to {store}" if exp in completed else "not in the store file (--overwrite appends them)"
            self.echo(f"{exp}: {len(snips)} latent(s) generated for the df02 rows {store.name} lacks, in df03; {where}")
        appended = set(map(str, completed.values()))
        for path, n in self.outputs.items():
            self.echo(f"wrote {path} ({n} rows{' appended' if path in appended else ''})")
        if skipped:
            self.echo(f"wrote {self.plan.outputs.partial_manifest}")
        self.echo(f"wrote {self.plan.outputs.sidecar}")


def still_missing(con: duckdb.DuckDBPyConnection) -> list[Skipped]:
    rows = con.sql(missing_sql()).fetchall()
    return [Skipped("df03", snip, exp, reason="df02 row without latents") for exp, snip in rows]


def report_coverage(con, echo) -> tuple[dict, int]:
    """Both coverages of the legacy df03 (all df02 rows, the legacy step's; and usable rows), warning under 95%."""
    rows = con.sql(coverage_sql()).fetchall()
    total = [sum(r[i] for r in rows) for i in range(1, 5)]  # df02, df03, usable, usable in df03
    share = lambda part, whole: round(part / whole, 6) if whole else None  # noqa: E731
    coverage = {
        "overall": share(total[1], total[0]),
        "usable": share(total[3], total[2]),
        "df02_rows": total[0],
        "df03_rows": total[1],
        "usable_rows": total[2],
        "usable_embedded": total[3],
        "per_experiment": {
            r[0]: {
                "df02_rows": r[1],
                "df03_rows": r[2],
                "coverage": share(r[2], r[1]),
                "usable_rows": r[3],
                "usable_embedded": r[4],
                "usable_coverage": share(r[4], r[3]),
                "legacy": r[5],
                "onnx": r[6],
            }
            for r in rows
        },
    }
    warn = lambda part, whole: "  WARNING: below 95%" if whole and part / whole < COVERAGE_WARNING else ""  # noqa: E731
    echo(
        f"coverage: {coverage_text(total[1], total[0])} df02 rows in df03{warn(total[1], total[0])}; "
        f"usable rows (use_embryo_flag): {coverage_text(total[3], total[2])}"
    )
    for exp, d02, d03, use, emb, *_ in rows:
        echo(f"  {exp:<36} {coverage_text(d03, d02):<22} usable {coverage_text(emb, use)}{warn(d03, d02)}")
    return coverage, total[1]


def store_files_to_write(con, plan: Plan) -> tuple[list[str], list[Skipped]]:
    """Experiments whose generated store file can be written: every df02 row has an embedding now (a partial
    file would count as the experiment's store and never be completed); the others are listed as skipped."""
    complete, skipped = [], []
    for exp, target in plan.outputs.store.items():
        have = con.sql(
            "select count(*) from df03 join df02_order using (snip_id, experiment_date) where experiment_date = ?",
            params=[exp],
        ).fetchall()[0][0]
        if have == plan.rows[exp]:
            complete.append(exp)
        else:
            skipped.append(
                Skipped(
                    "latents",
                    exp,
                    str(target),
                    reason=f"store file not written: {plan.rows[exp] - have} "
                    f"of {plan.rows[exp]} df02 rows have no embedding (listed here)",
                )
            )
    return complete, skipped


def filled_gaps(con, plan: Plan, encoder_sha256: str | None) -> dict[str, list[str]]:
    """Per experiment, the df02 snips its store file lacks that df03 now holds from the encoder generation runs,
    fp32 and legacy-faithful (what --generate-missing-latents made for them, now or in an earlier run)."""
    gaps = [(snip, exp) for exp, snips in plan.gaps.items() for snip in snips]
    if not gaps or encoder_sha256 is None:
        return {}
    con.register("gap_keys", pa.table({"snip_id": [g[0] for g in gaps], "experiment_date": [g[1] for g in gaps]}))
    rows = con.sql(
        "select experiment_date, snip_id from df03 join gap_keys using (snip_id, experiment_date) "
        "where embedding_source = 'onnx' and embed_options is null and model_sha256 = ? order by all",
        params=[encoder_sha256],
    ).fetchall()
    filled: dict[str, list[str]] = {}
    for exp, snip in rows:
        filled.setdefault(exp, []).append(snip)
    return filled


def generated_latents(plan: Plan, filled: dict[str, list[str]], encoder_sha256: str | None) -> dict:
    """The sidecar's (and partial manifest's) account of the latents this step generated: new store files, and the
    rows of existing store files' gaps, with whether they went into the file (--overwrite) or are in df03 only."""
    return {
        "encoder_sha256": encoder_sha256,
        "precision": "fp32",
        "new_store_files": {exp: str(path) for exp, path in plan.outputs.store.items()},
        "store_gaps": {
            exp: {
                "store_file": str(plan.latent_files[exp]),
                "in_store": exp in plan.outputs.completed,
                "snip_ids": snips,
            }
            for exp, snips in filled.items()
        },
    }
