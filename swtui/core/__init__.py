"""Headless engine, one package per step of the method, in layers: a package imports only the
packages below it (tests/test_import_hygiene.py enforces the order).

    engine     the engine thread and the typed protocol the UI talks to it with
    snapshot   the session as a file: snapshots, their schema, reports, the census of cached models
    detection  finding super weights: probe, spike rule, channels, the impact check, experts, catalog
    evidence   measuring: statistics with intervals, metrics, variants, sweeps, the evaluation plan
    quant      quantization: RTN, its configs, the quantizers a session applies, presets
    edits      every change to the weights, restorable: keys, the ledger, hooks, the session
    model      how the weights are held: loading, GGUF cache, adapters, MoE, offload, streaming
    errors, defaults, verdicts, throttle: the leaves every package may import

Nothing in this package imports Textual; no package's __init__ imports its modules (the TUI imports
`swtui.core.engine.protocol` and must stay torch-free).
"""
