"""The lab's folders as the legacy code lays them out: one object, so no module rebuilds a path of them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from morphlake.ingest.naming import check_segment
from morphlake.ingest.paths import SNIP_SUBDIR, latent_store_dir, snip_dir

METADATA = Path("metadata") / "combined_metadata_files"
DF02_RELPATH = METADATA / "embryo_metadata_df02.csv"
DF03_RELPATH = METADATA / "embryo_metadata_df03.csv"
TRAIN_CSV = "embryo_metadata_df_train.csv"
TRAIN_WITH_EMBEDDINGS = "embryo_metadata_with_embeddings.csv"


@dataclass(frozen=True)
class DataRoot:
    """The morphseq root (df02, df03, training sets) and the data root (snips, the legacy latent store,
    models, analysis copies); the lab often keeps both in one folder. Nothing here touches the disk but
    `train_sets` (a folder listing)."""

    root: Path
    data: Path

    @classmethod
    def at(cls, root: Path | str, data_root: Path | str | None = None) -> DataRoot:
        return cls(Path(root).absolute(), Path(data_root if data_root is not None else root).absolute())

    # the morphseq root
    @property
    def df02(self) -> Path:
        return self.root / DF02_RELPATH

    @property
    def df03(self) -> Path:
        return self.root / DF03_RELPATH

    def train_csv(self, name: str) -> Path:
        return self.root / "training_data" / check_segment("training set name", name) / TRAIN_CSV

    def train_with_embeddings(self, name: str) -> Path:
        return self.train_csv(name).with_name(TRAIN_WITH_EMBEDDINGS)

    def train_sets(self) -> dict[str, Path]:
        """train_name -> training metadata CSV, for every training_data/<name>/ that has one."""
        base = self.root / "training_data"
        return {p.parent.name: p for p in sorted(base.glob(f"*/{TRAIN_CSV}"))} if base.is_dir() else {}

    # the data root
    @property
    def snips(self) -> Path:
        return self.data / SNIP_SUBDIR

    def snip_dir(self, experiment: str) -> Path:
        return snip_dir(self.data, experiment)

    @property
    def latent_embeddings(self) -> Path:
        return self.data / "analysis" / "latent_embeddings"

    def store(self, model_name: str) -> Path:
        """The legacy latent store of one model: morph_latents_<exp>.csv files."""
        return latent_store_dir(self.data, model_name)

    def store_file(self, model_name: str, experiment: str) -> Path:
        return self.store(model_name) / f"morph_latents_{check_segment('experiment_date', experiment)}.csv"

    def model_dir(self, model_name: str) -> Path:
        return self.data / "models" / "legacy" / check_segment("model name", model_name)

    def model_config(self, model_name: str) -> Path:
        return self.model_dir(model_name) / "model_config.json"

    def analysis_copy(self, model_name: str, experiment: str) -> Path:
        """build06 --export-analysis-copies: df03 of one experiment."""
        folder = self.data / "metadata" / "metadata_n_embeddings" / check_segment("model name", model_name)
        return folder / f"df03_{check_segment('experiment_date', experiment)}.csv"
