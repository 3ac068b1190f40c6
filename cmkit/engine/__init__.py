"""Building and running bundles: Docker images and containers, or local processes."""
