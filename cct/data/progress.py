"""Progress bars for the dataset tools (tqdm on a terminal, nothing in a log file or pipe)."""


def progress(iterable, total=None, desc=None):
    """``iterable`` wrapped in a tqdm bar on stderr when stderr is a terminal (tqdm optional)."""
    try:
        from tqdm import tqdm
    except ImportError:
        return iterable
    # disable=None turns the bar off when stderr is not a TTY, so logs stay clean.
    return tqdm(iterable, total=total, desc=desc, disable=None, unit=' records', leave=False)
