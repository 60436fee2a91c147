"""The singing voice: the neural voice run with our durations (piper.py); singing comes next."""
