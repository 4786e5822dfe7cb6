"""The Textual inspector. Talks to the model only through swtui.core.worker (no torch here)."""
