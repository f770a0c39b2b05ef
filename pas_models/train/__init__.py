"""The training job that runs on compute nodes for every hypothesis (and the base network)."""
