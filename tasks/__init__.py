"""Prefect tasks: the IO verbs of a run (load, generate, cut, write, append to the ledger)."""
