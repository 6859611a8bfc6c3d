"""moe-agent: an autonomous coding agent for self-hosted Mixture-of-Experts models."""

__version__ = "0.1.0"
