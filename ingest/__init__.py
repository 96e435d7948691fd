"""Readers that turn the lab's legacy files into typed Arrow tables (no lake writes).

The names below load their module on first use (PEP 562), so importing one light submodule (e.g. the errors
or the naming rules) does not import Polars and the CSV readers.
"""

from morphlake.common.lazy import lazy_exports

_EXPORTS = {
    "InputError": "errors",
    "read_df02": "df02",
    "read_train": "df02",
    "read_latent_store": "latents",
    "scan_snips": "ledger",
}
__all__ = list(_EXPORTS)

__getattr__ = lazy_exports(__name__, _EXPORTS)
