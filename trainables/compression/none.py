"""No compression: the baseline."""

from trainables.compression._base import Compression


class NoCompression(Compression):
    kind = "none"
