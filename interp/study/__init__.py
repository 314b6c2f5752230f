"""The study: typed records, the run directory, stages, the runner, report and figures."""
