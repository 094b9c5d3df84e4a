"""``python -m bench.config``: print the configuration reference (``> docs/config.md``)."""

from bench.config.docs import docs_markdown

if __name__ == "__main__":
    print(docs_markdown(), end="")
