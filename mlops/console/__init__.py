"""Console views of a deployed stack: `mlops status` and `mlops dashboard`."""
