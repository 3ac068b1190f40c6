"""The model-test checks, run against any running model server."""
