"""Helpers for tests and benchmarks: tiny models built on the fly, no downloads."""

from __future__ import annotations

from .tiny_clip import build_tiny_clip

__all__ = ["build_tiny_clip"]
