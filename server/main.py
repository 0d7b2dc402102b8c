"""Claude Desktop bundle (MCPB) entry point: starts the stdio server.

The host runs this with `uv run`, which installs the dependencies for the user's Python first. Run any other
way it may meet an old Python or no dependencies: say so in one line instead of a traceback. Kept parseable
by old Pythons, so the version check can run at all.
"""

import sys

NEEDED = (3, 10)


def _fail(message):
    sys.stderr.write("evolink-mcp: " + message + "\n")
    sys.exit(1)


if sys.version_info[:2] < NEEDED:
    _fail(
        "needs Python %d.%d or newer, but %s is Python %d.%d: install a newer one from "
        "https://www.python.org/downloads/ or with `uv python install 3.12`."
        % (NEEDED[0], NEEDED[1], sys.executable, sys.version_info[0], sys.version_info[1])
    )

try:
    import mcp  # noqa: F401  (the first of the dependencies uv installs)
except ImportError:
    _fail(
        "its dependencies are not installed for %s. Start the bundle with uv, which installs them: "
        "uv run --directory <the bundle's folder> server/main.py" % sys.executable
    )

from evolink_mcp.cli import main  # noqa: E402

main()
