"""python -m multiport."""

from .cli import main

raise SystemExit(main())
