"""``python -m bench.latent``: pre-encode the latents of a config or sweep (bench.tools.latent)."""

import sys

from bench.tools.latent import main

if __name__ == "__main__":
    sys.exit(main())
