"""The Textual inspector. Talks to the model only through swtui.core.engine.engine's protocol (no torch here)."""
