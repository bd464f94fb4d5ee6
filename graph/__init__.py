"""ragloom graph."""
