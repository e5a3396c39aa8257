"""livepitch: live polyphonic audio to MIDI with Spotify's Basic Pitch model."""

__version__ = "0.1.0"
