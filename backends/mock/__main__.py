"""``python -m backends.mock``: run the mock inference server."""

from backends.mock.server import main

raise SystemExit(main())
