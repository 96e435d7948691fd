"""Readers that turn the lab's legacy files into typed Arrow tables (no lake writes)."""

from ingest.df02 import read_df02, read_train
from ingest.errors import InputError
from ingest.latents import read_latent_store
from ingest.ledger import scan_snips

__all__ = ["InputError", "read_df02", "read_train", "read_latent_store", "scan_snips"]
