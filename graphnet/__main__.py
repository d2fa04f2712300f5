"""``python -m graphnet`` == the ``graphnet`` console script (graphnet.cli:main)."""

from graphnet.cli import main

raise SystemExit(main())
