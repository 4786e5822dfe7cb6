"""The engine thread that owns the model and the typed protocol the UI talks to it with:
the engine (`engine`: `Engine`), one handler per request (`handlers`: `handles`, `Findings`), the
requests and events (`protocol`), the values they carry (`payloads`), findings as protocol rows
(`rows`) and the strict JSON form of all of them (`wire`). `protocol`, `payloads` and `wire`
import no torch: the TUI imports them.
"""
