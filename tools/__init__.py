"""Tools the model can call; each runs against the `sandbox.base.Sandbox` protocol."""
