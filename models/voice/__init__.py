"""The singing voice: the neural speaking voice (piper.py) turned into singing by WORLD
(singer.py), the ONNX singing-model backend (onnx_singer.py), the expression styles
(expression.py), the spoken yardsticks for intelligibility (spoken_reference.py), and
`build_singer` (builders.py), which picks the backend for a track."""
