"""What morphlake shows people: `status`, the summary after a build, `sql`, `neighbours` and the HTML report."""
