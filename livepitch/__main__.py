"""``python -m livepitch``."""

import sys

from livepitch.cli import main

sys.exit(main())
