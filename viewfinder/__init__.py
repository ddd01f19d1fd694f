"""Viewfinder: self-hosted natural-language image search."""

__version__ = "0.1.0"
