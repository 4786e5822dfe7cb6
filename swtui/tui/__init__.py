"""The Textual inspector. Talks to the model only through the engine's protocol (swtui.core.engine.protocol; no torch here)."""
