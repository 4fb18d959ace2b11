"""retrievalkit: instance-level image retrieval and copy detection as composable pipeline stages."""

__version__ = "0.1.0"
