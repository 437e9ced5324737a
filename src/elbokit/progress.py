"""Progress bars (tqdm), one place so every iterative fit looks the same."""

from __future__ import annotations

import sys

from tqdm.auto import tqdm


def progress_bar(*, total: int | None = None, desc: str = "", disable: bool = False, **kwargs):
    """A tqdm bar on stderr; ``disable=True`` gives a no-op bar with the same API."""
    return tqdm(total=total, desc=desc, disable=disable, file=sys.stderr, leave=False,
                dynamic_ncols=True, **kwargs)


class TrainingBar:
    """The bar of a training loop: its steps, and beside them the fields the loop sets
    (the epoch running, its loss so far, the last validation score). A field keeps its
    value until it is set again, and the fields are set *before* the steps are counted,
    so that the bar never shows the epoch before the one running."""

    def __init__(self, total: int | None, desc: str, show: bool = True):
        self.bar = progress_bar(total=total, desc=desc, disable=not show, unit="step",
                                mininterval=0.5)
        self.fields: dict[str, str] = {}

    @property
    def disable(self) -> bool:
        return self.bar.disable

    def steps(self, n: int, **fields) -> None:
        """Count ``n`` more steps, with ``fields`` (name -> value) shown beside them."""
        self._set(fields, refresh=False)  # update() redraws with them
        self.bar.update(n)

    def show(self, **fields) -> None:
        """Set ``fields`` and redraw now (e.g. the validation score after an epoch)."""
        self._set(fields, refresh=True)

    def _set(self, fields: dict, refresh: bool) -> None:
        if self.bar.disable:
            return
        self.fields.update({k: f"{v:.2f}" if isinstance(v, float) else str(v)
                            for k, v in fields.items()})
        self.bar.set_postfix(self.fields, refresh=refresh)

    def __enter__(self) -> "TrainingBar":
        return self

    def __exit__(self, *exc) -> None:
        self.bar.close()
