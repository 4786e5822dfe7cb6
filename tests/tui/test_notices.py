"""Notices and progress never cover or push the figures (issue 33): a notification is drawn in a
line of the screen (the main screen's status line, a comparison's notice line, the status line
behind a dialog), never as a toast; a long step's progress is a percentage in the status line,
never an extra row that makes an 80×24 screen scroll. Toasts are on here (`notifications=True`):
Textual's test harness turns them off by default, which hid them from every snapshot."""

from textual.widgets._toast import Toast

from swtui.core.engine import protocol as ev
from swtui.tui.screens.compare import CompareScreen
from swtui.tui.screens.groups import GroupsScreen
from swtui.tui.widgets.notice import NoticeLine
from swtui.tui.widgets.status import StatusBar

from support.pilot import wait_for
from test_screens import app, quiet


def toasts(app) -> list:
    return [t for screen in app.screen_stack for t in screen.query(Toast)]


async def test_a_notice_is_drawn_in_a_line_of_the_screen_never_as_a_toast():
    a = app()
    async with a.run_test(size=(80, 24), notifications=True) as pilot:
        await quiet(pilot)
        status = a.main.query_one(StatusBar)

        a.notify("super weight: layer 11 [507, 1229]", title="Detected")
        await wait_for(pilot, lambda: status.notice is not None, timeout=5)
        assert "Detected: super weight: layer 11 [507, 1229]" in str(status.render())

        await pilot.press("w")  # a dialog: the status line behind it stays in sight
        await wait_for(pilot, lambda: isinstance(a.screen, GroupsScreen), timeout=5)
        a.notify("a warning while a dialog is open", severity="warning")
        await wait_for(pilot, lambda: status.notice == ("a warning while a dialog is open", "warning"), timeout=5)
        await pilot.press("escape")

        await pilot.press("C")  # a full screen: its own notice line
        await wait_for(pilot, lambda: isinstance(a.screen, CompareScreen), timeout=5)
        line = a.screen.query_one(NoticeLine)
        a.notify("an error on the comparison", severity="error")
        await wait_for(pilot, lambda: "an error on the comparison" in str(line.render()), timeout=5)
        await pilot.pause(0.3)
        assert toasts(a) == []


async def test_progress_is_a_percentage_in_the_status_line_and_the_screen_does_not_scroll():
    a = app()
    async with a.run_test(size=(80, 24)) as pilot:
        await quiet(pilot)
        main, status = a.main, a.main.query_one(StatusBar)
        rows_before = [(w.id, w.region) for w in main.children]
        a.main.busy = "measuring impact (perplexity)"
        main.handle(ev.Progress("measuring impact (perplexity)", 0.42))
        await pilot.pause()
        line = str(status.render())
        assert "measuring impact (perplexity) 42%" in line, line
        assert main.virtual_size.height <= main.size.height, "the screen scrolls while a step progresses"
        assert not main.show_vertical_scrollbar
        assert [(w.id, w.region) for w in main.children] == rows_before, "progress moved the figures"
        a.main.busy = ""
        await pilot.pause()
        assert "%" not in str(status.render())
