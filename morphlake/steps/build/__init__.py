"""`morphlake build`: plan, dbt, the df03 export, the snapshot and the replayed tests."""
