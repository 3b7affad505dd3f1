"""Pixel competitions: CSV rows to cached image arrays, and the one pixel convention (PNGs, sheets)."""
