"""`python -m app.cli`: the same as the `facesvc` script."""

import sys

from app.cli import main

sys.exit(main())
