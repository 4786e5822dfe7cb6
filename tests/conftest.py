import os

import pytest

from support.builders import tiny_session  # tests/ is on the path: pythonpath in pyproject.toml

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture
def tiny():
    """A fresh tiny Llama (CPU, float32) with a planted super weight at (1, 5, 17)."""
    return tiny_session("llama")


@pytest.fixture(scope="session")
def demo_session():
    """The real demo model (SmolLM2-135M-Instruct) on the CPU in float32, loaded once per run."""
    from swtui.core.model.loading import LoadOptions, load_model
    from swtui.core.edits.session import Session

    return Session(load_model(None, LoadOptions(device="cpu", dtype="float32")))


@pytest.fixture(scope="session")
def demo_detection(demo_session):
    """Detection on the demo model with the default options, run once per test run and adopted."""
    from swtui.core.detection.detect import DetectOptions, adopt, detect

    detection = detect(demo_session, DetectOptions())
    adopt(demo_session, detection)
    return detection


@pytest.fixture
def demo(demo_session):
    """The demo session, with every edit undone after the test."""
    yield demo_session
    demo_session.reset()
