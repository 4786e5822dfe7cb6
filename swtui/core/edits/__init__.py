"""Every change to the weights and activations, restorable bit-exactly: a weight's key and the
scalar edits (`keys`: `make_key`, `edited_scalar`, `weights_hash`), the ledger every weight change
goes through (`ledger`: `EditLedger`; its tensor storage `ledger_store`, a streamed model's state
`stream_state`), activation interventions (`hooks`: `HookSet`, `SARestore`, `ZeroWrite`), named
scenarios (`scenarios`), ablations (`ablation`) and the session that holds a loaded model with
all of it (`session`: `Session`, `SuperWeight`).
"""
