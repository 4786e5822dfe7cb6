"""Command palette provider: every action of the registry, searchable; what cannot apply now is
dimmed, says why, and is not run."""

from __future__ import annotations

from rich.text import Text
from textual.command import DiscoveryHit, Hit, Hits, Provider

from swtui.tui.actions import Action, palette, why_not


class SwtuiCommands(Provider):
    def _entry(self, action: Action) -> tuple[Text, str, object]:
        reason = why_not(self.app.main, action)
        keys = f" ({action.key_text()})" if action.keys else ""
        title = Text(action.title, style="dim" if reason else "")
        help_text = f"unavailable: {reason}" if reason else action.help + keys
        return title, help_text, lambda a=action: self._run(a)

    def _run(self, action: Action) -> None:
        reason = why_not(self.app.main, action)
        if reason:
            self.app.notify(reason, severity="warning")
        else:
            # run_action is a coroutine: scheduled, it runs once the palette has closed
            self.app.call_later(self.app.run_action, action.name,
                                self.app if action.scope == "app" else self.app.main)

    async def discover(self) -> Hits:
        for action in palette():
            title, help_text, run = self._entry(action)
            yield DiscoveryHit(title, run, help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for action in palette():
            score = matcher.match(action.title)
            if score > 0:
                title, help_text, run = self._entry(action)
                highlighted = matcher.highlight(action.title)
                if why_not(self.app.main, action):
                    highlighted.stylize("dim")
                yield Hit(score, highlighted, run, text=action.title, help=help_text)
