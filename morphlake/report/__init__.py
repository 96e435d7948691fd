"""What morphlake shows people: `status` and the summary after a build."""
