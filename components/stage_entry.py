"""``python -m components.stage_entry``: the command a separate interpreter or a pod runs for one stage.

The documented, stable entry point; the contract (request, outcome, exit status) is
``components.pipeline.envelope``.
"""

from __future__ import annotations

import sys

from components.pipeline.envelope import main

if __name__ == "__main__":
    sys.exit(main())
