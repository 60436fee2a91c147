"""The inaudible provenance mark: Resemble AI's PerthNet (MIT), run without torchaudio."""
