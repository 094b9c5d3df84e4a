"""``python -m bench.latent``: pre-encode the latents of a config or sweep (bench.tools.latent)."""

import sys

from bench.core.command import guard_startup, run_main

guard_startup(__name__ == "__main__")        # Ctrl-C during the import below: one line

from bench.tools.latent import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(run_main(main))
