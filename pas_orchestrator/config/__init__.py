"""Search definitions (``jobs/*.yaml``) and cluster profiles (``cluster_profiles/*.yaml``) as validated dataclasses."""
