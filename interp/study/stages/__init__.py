"""The stages of a study, in run order: label, candidates, select, evaluate, steer, transfer, analysis.
Each is a function from records (and the model) to records; `interp.study.runner` orders and checkpoints
them, and nothing here touches the run directory."""
