"""morphlake: the CLI, the pipeline steps and the only writer of the lake."""

__version__ = "0.1.0"
DEFAULT_MODEL_NAME = "20241107_ds_sweep01_optimum"
