"""`python -m vidbatch.cli`: the same as the `vidbatch` command."""

import sys

from vidbatch.cli import main

sys.exit(main())
