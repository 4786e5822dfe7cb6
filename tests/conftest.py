import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def tiny_session(arch: str = "llama", plant=True):
    from swtui.core.loading import load_model
    from swtui.core.session import Session

    return Session(load_model(f"tiny:{arch}" + ("" if plant else ":noplant"), None))


@pytest.fixture
def tiny():
    """A fresh tiny Llama with a planted super weight at (1, 5, 17)."""
    return tiny_session("llama")


@pytest.fixture(scope="session")
def demo_session():
    """The real demo model (SmolLM2-135M-Instruct), loaded once per test run."""
    from swtui.core.loading import load_model
    from swtui.core.session import Session

    return Session(load_model(None))


@pytest.fixture
def demo(demo_session):
    """The demo session, with every edit undone after the test."""
    yield demo_session
    demo_session.ledger.restore_all()
    demo_session.sa_restore.clear()
    demo_session.current_hook_factories.clear()
    demo_session.quant_config = None
