"""ragloom evals."""
