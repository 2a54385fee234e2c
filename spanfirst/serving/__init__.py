"""Serving: spanfirst checkpoints as MLflow pyfunc models ("models from code", no pickle)."""
