"""Quality: measured properties of songs and audio (the QC gate builds on these)."""
