"""The legacy Build06 step: its plan, run, CSV and store outputs, and `compare`."""
