"""The writing steps (ingest, embed, build) and the run lifecycle they share."""
