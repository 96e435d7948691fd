"""Where the lab's files sit under a data root, as paths only (no reader, so a module that needs a path loads no
table library): the legacy latent store of a model and the snip folders of an experiment."""

from __future__ import annotations

from pathlib import Path

from morphlake.ingest.naming import check_segment

SNIP_SUBDIR = Path("training_data") / "bf_embryo_snips"


def latent_store_dir(data_root: Path, model_name: str) -> Path:
    """Where the legacy store of one model lives under a data root."""
    return Path(data_root) / "analysis" / "latent_embeddings" / "legacy" / model_name


def snip_dir(data_root: Path, experiment: str) -> Path:
    """Folder holding one experiment's snips under a data root."""
    return Path(data_root) / SNIP_SUBDIR / check_segment("experiment_date", experiment)


__all__ = ["SNIP_SUBDIR", "latent_store_dir", "snip_dir"]
