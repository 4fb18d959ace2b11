"""Every stage's settings: one dataclass per stage, the one place its defaults live.

The library functions take their defaults from these classes and the command line fills only the options a user
gave (``retrievalkit.cli.options.config_from_options``); ``__post_init__`` checks the ranges and raises a
``UsageError`` naming the command-line option, so the library and ``rkit`` refuse the same values. The modules
import neither torch nor OpenCV, so ``rkit --help`` shows the defaults without loading them.
"""
