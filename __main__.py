"""``python -m depthstyle``: the same as the ``depthstyle`` command."""

from .cli import main

raise SystemExit(main())
