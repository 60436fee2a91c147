"""Instruments: arrangement presets and the renderers that turn parts into stems."""
