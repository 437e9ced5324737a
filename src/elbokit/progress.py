"""Progress bars (tqdm), one place so every iterative fit looks the same."""

from __future__ import annotations

import sys

from tqdm.auto import tqdm


def progress_bar(*, total: int | None = None, desc: str = "", disable: bool = False, **kwargs):
    """A tqdm bar on stderr; ``disable=True`` gives a no-op bar with the same API."""
    return tqdm(total=total, desc=desc, disable=disable, file=sys.stderr, leave=False,
                dynamic_ncols=True, **kwargs)
