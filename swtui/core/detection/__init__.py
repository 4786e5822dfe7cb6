"""Finding super weights, never consulting the catalog: the probe (`probe`: `ProbeResult`; its
layers' frozen record, `layer_stats.LayerStats`, is torch-free: the protocol's `LayerRow` is one),
the spike rule and the detection loop (`detect`: `detect`, `DetectOptions`, `Detection`, `adopt`),
massive channels and their writers (`channels`), the impact check (`impact`) and the channels
judged (`groups`: `WriterGroup`), matched controls (`controls`), super experts (`experts`,
`expert_profile`, `expert_scan`), the catalog compared after the fact (`catalog`), the findings as
JSON (`findings`: `candidate_json`, `judged_json`) and the cross-prompt confirmation's probes in
one streamed pass (`stream_probes`).
"""
