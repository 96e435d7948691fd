"""Readers that turn the lab's legacy files into typed Arrow tables (no lake writes)."""

from morphlake.ingest.df02 import read_df02, read_train
from morphlake.ingest.errors import InputError
from morphlake.ingest.latents import read_latent_store
from morphlake.ingest.ledger import scan_snips

__all__ = ["InputError", "read_df02", "read_train", "read_latent_store", "scan_snips"]
