"""`morphlake demo`: the synthetic data root, its snip images and the demo pipeline."""
