"""ragloom retrievers."""
