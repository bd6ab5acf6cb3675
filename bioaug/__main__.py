"""``python -m bioaug`` is the same as the ``bioaug`` command."""

from bioaug.cli import main

raise SystemExit(main())
