"""Prefect flows: the wiring of vidbatch's tasks into runs."""
