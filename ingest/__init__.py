"""Readers that turn the lab's legacy files into typed Arrow tables (no lake writes).

The names below load their module on first use (PEP 562), so importing one light submodule (e.g. the errors
or the naming rules) does not import Polars and the CSV readers.
"""

from typing import TYPE_CHECKING

from morphlake.common.lazy import lazy_exports

if TYPE_CHECKING:  # the same names for the type checker, which cannot follow __getattr__
    from morphlake.ingest.df02 import read_df02 as read_df02
    from morphlake.ingest.df02 import read_train as read_train
    from morphlake.ingest.errors import InputError as InputError
    from morphlake.ingest.latents import read_latent_store as read_latent_store
    from morphlake.ingest.ledger import scan_snips as scan_snips

_EXPORTS = {
    "InputError": "errors",
    "read_df02": "df02",
    "read_train": "df02",
    "read_latent_store": "latents",
    "scan_snips": "ledger",
}
__all__ = list(_EXPORTS)

__getattr__ = lazy_exports(__name__, _EXPORTS)
