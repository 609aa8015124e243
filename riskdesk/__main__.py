"""`python -m riskdesk` is the `riskdesk` command (the launcher starts its children this way)."""

import sys

from riskdesk.cli import main

sys.exit(main())
