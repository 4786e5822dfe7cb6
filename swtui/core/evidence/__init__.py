"""Measuring, with how sure we are: paired statistics with 95% intervals (`stats`: `Ratio`,
`Difference`, `perplexity_of`), the measured records (`records`: `Metrics`, `StopwordReport`),
perplexity and stopword mass and what measuring a state means (`metrics`: `measure`), greedy
generation (`generation`), variants compared side by side
(`variants`), scale and quantization sweeps (`sweeps`, their rows `sweep_rows`), the evaluation
plan of claims, arms and looks (`plan`: `Claim`, `Arm`, `Schedule`) and its runners (`arms`:
`PlanRunner`; streamed: `lockstep`, `stream_plan`; an ablation's arms in one pass: `arm_states`),
on a held-out corpus (`corpus`).
"""
