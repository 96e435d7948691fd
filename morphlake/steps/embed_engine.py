"""What an embed engine (local threads, or Ray) gives the run: its batches, and its check of the decode."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pyarrow as pa

from morphlake.embed import EmbeddedBatch, SnipRef


@dataclass(frozen=True)
class Engine:
    """`batches(plans)` yields EmbeddedBatch in plan order; `check_decode(snips)` checks --decode gpu against the
    legacy decode where the engine decodes (steps.decode_check), returning its figures."""

    batches: Callable[[dict[str, pa.Table]], Iterator[EmbeddedBatch]]
    check_decode: Callable[[list[SnipRef]], dict]
