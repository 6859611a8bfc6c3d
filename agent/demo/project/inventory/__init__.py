"""A tiny inventory library: the demo's buggy project."""
