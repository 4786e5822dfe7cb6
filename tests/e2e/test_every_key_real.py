"""Every key on every screen, shorter, on the real engine with a tiny model: each screen's declared
bindings (action registry + BINDINGS) pressed once, then a short seeded random walk; after every key
the app is alive, its screen stack sane, and the status idle once the engine is; `q` exits 0. The
long version, widgets' own keys included, runs on the fake engine (tests/tui/test_every_key.py)."""


from support.apps import loading_app
from support.keys import KeyLog, every_key_on_every_screen, random_walk
from support.pilot import settle

SEED = 22  # issue 22
WALK = 12  # the fake-engine suite walks 320 keys; this one proves the real engine under the same keys


async def test_every_key_then_a_random_walk_on_tiny_llama(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # x writes its snapshots into ./snapshots
    # a short evaluation text (four windows): every key's work is what is tested here, not the evidence
    app = loading_app("tiny:llama", max_new_tokens=4, eval_text="The cat sat on the mat. " * 45)
    log = KeyLog()
    async with app.run_test(size=(110, 34)) as pilot:
        await settle(pilot, app)
        assert app.main.rows and app.main.groups  # detection ran: every key has something to act on
        await every_key_on_every_screen(pilot, app, log, timeout=60, live=False)
        sequence = log.pressed
        await random_walk(pilot, app, log, WALK, SEED, timeout=60)
        log.pressed += 1
        await pilot.press("q")
        await pilot.pause()
    assert app._exception is None and app.return_code == 0
    with capsys.disabled():
        print(f"\n{log.summary(f'real engine, {sequence} in sequence + walk of {WALK}, seed {SEED}')}")
    assert len(log.by_screen) >= 10
