"""The session as a file: snapshots written, checked and reopened (`snapshot`:
`build_snapshot`, `apply_snapshot`), their schema and migrations (`schema`), the Markdown report
(`report`) and the census of the cached models, each loaded, detected, judged and snapshotted
(`census`).
"""
