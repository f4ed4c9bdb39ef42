"""``python -m sandbox``: run the sandbox CLI (patches gevent first, as runtime.py does)."""

from gevent import monkey

monkey.patch_all()

import sys  # noqa: E402

from sandbox.cli import main  # noqa: E402

sys.exit(main(sys.argv[1:]))
