"""Lyrics: provided lyrics, the rule writer and the LM writer (see songwriter.py)."""
