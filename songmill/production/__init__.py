"""Production: the mix and the masters (DESIGN.md §1: instruments + vocals → mix → master).

loudness  BS.1770-4 loudness, loudness range, true peak (4× oversampled), phase, DC, tone
presets   config/production.yaml: per-genre balance, sends, ducking and tonal targets
mix       stems → one stereo 48 kHz mix and the decisions that made it
master    the mix → one master per delivery profile (tone, glue, width, loudness, ceiling)
dither    TPDF dither for 16-bit delivery
"""
