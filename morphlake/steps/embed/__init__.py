"""`morphlake embed`: options, the encoder copies, the plan, the local and Ray engines, the writer, the decode check."""
