"""``python -m livepitch``."""

import sys

from livepitch.launch import main

sys.exit(main())
