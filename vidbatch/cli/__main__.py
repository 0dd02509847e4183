"""`python -m vidbatch.cli`: the same as the `vidbatch` command."""

from vidbatch.cli import main

main()
