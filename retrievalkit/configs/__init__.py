"""Every stage's settings: one dataclass per stage, the one place its defaults live.

Every stage function takes its class as ``config`` (None: the defaults; see ``retrievalkit.stages``) and the
command line fills only the options a user gave (``retrievalkit.cli.options.config_from_options``);
``__post_init__`` checks the ranges and raises a ``UsageError`` naming the command-line option, so the library and
``rkit`` refuse the same values. The modules import neither torch nor OpenCV, so ``rkit --help`` shows the
defaults without loading them.
"""
