"""Sweeps of datasets x agents x seeds: run an experiment (sweep.launch, from an experiments/*.yaml read by
sweep.experiment), keep its results as one tidy table (sweep.records), and report them (sweep.stats, sweep.summary,
sweep.report). The command line is ``python -m sweep`` (sweep/__main__.py)."""

from sweep.experiment import Agent, Experiment, load_experiment
from sweep.records import collect, read_table, write_table

__all__ = ["Agent", "Experiment", "collect", "load_experiment", "read_table", "write_table"]
