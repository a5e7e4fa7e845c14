"""``python -m nst_daemon.cli`` runs the ``nst`` command."""

import sys

from nst_daemon.cli import main

sys.exit(main())
