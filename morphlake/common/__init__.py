"""What morphlake.ingest, morphlake.embed and the face share: hinted errors, skipped items, fingerprints, z names."""
