"""Composition: song form (this release), harmony, melody, bass and drums (the songwriting issue)."""
