"""``python -m nst_daemon ...`` is the ``nst`` command (how clients start the daemon)."""

import sys

from nst_daemon.cli import main

sys.exit(main())
