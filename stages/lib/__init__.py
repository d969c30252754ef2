"""Code shared by two or more stages."""
