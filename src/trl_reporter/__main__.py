"""``python -m trl_reporter``: the ``trl-report`` command."""

from trl_reporter.cli import main

raise SystemExit(main())
