"""imagegate: a self-hosted, provider-agnostic image generation job API."""

__version__ = "0.1.0"
