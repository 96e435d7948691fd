"""The lake: its layout, staged all-or-nothing publishing, the writer lock, run records, fault points."""
